"""A real SMTP server for the notice tests (aiosmtpd). Each accepted message is written to
DIR/NNNN.json (recipients, decoded subject and body). When DIR/stall_at holds N, the N-th
message waits before it is accepted (and DIR/stalled appears); when stall_at disappears it is
refused with 451 (as a relay that lost the connection would), so the test can stop boveda in
the middle of a delivery. Recipients ending in @bounce.example get 550.
Prints the port on stdout once listening."""
import asyncio, email, email.policy, json, os, socket, sys
from aiosmtpd.controller import Controller

DIR = sys.argv[1]

class Sink:
    count = 0
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@bounce.example"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        stall = os.path.join(DIR, "stall_at")
        if os.path.exists(stall) and int(open(stall).read()) == Sink.count + 1:
            open(os.path.join(DIR, "stalled"), "w").close()
            while os.path.exists(stall):
                await asyncio.sleep(0.02)
            return "451 4.3.0 try again later"
        Sink.count += 1
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        doc = {"rcpt": envelope.rcpt_tos, "subject": str(msg["subject"]),
               "message_id": str(msg["message-id"]), "body": msg.get_content()}
        path = os.path.join(DIR, "%04d.json" % Sink.count)
        with open(path + ".part", "w") as f:
            json.dump(doc, f, ensure_ascii=False)
        os.rename(path + ".part", path)
        return "250 OK"

probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
c = Controller(Sink(), hostname="127.0.0.1", port=port)
c.start()
print(port, flush=True)
try:
    sys.stdin.read()
finally:
    c.stop()
