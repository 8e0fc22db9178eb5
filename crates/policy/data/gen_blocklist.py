#!/usr/bin/env python3
"""Regenerates common-passwords.txt deterministically.

Source: the 30,000-entry PASSWORDS frequency list shipped in the `zxcvbn` crate (v3.1.1,
src/frequency_lists.rs, MIT licence, Copyright (c) 2016 Joshua Holmer; the list comes from
Dropbox's zxcvbn, MIT, built from Mark Burnett's public-domain 10 million password set).
Added: the forms that survive a 12-character minimum (NIST SP 800-63B §5.1.1.2 asks for
"passwords obtained from previous breach corpuses ... commonly-used, expected, or compromised
values"): the most common passwords padded with common suffixes and years, keyboard walks and
digit or letter runs, all of at least 12 characters.

Usage: gen_blocklist.py path/to/zxcvbn-3.1.1/src/frequency_lists.rs > common-passwords.txt
"""
import re
import sys

src = open(sys.argv[1], encoding="utf-8").read()
base = re.search(r'const PASSWORDS: &str = "([^"]*)"', src).group(1).split(",")
assert len(base) == 30000

out, seen = [], set()


def add(word):
    w = word.lower()
    if w and w not in seen:
        seen.add(w)
        out.append(w)


for w in base:
    add(w)

SUFFIXES = ["1", "12", "123", "1234", "12345", "123456", "!", "1!", "123!", "!!", "01",
            "007", "69", "99", "00", "11", "2000"]
YEARS = [str(y) for y in range(1970, 2031)]
top = [w for w in base[:2000] if w.isalpha() and len(w) >= 6]
for w in top:
    for s in SUFFIXES + YEARS:
        if len(w) + len(s) >= 12:
            add(w + s)
    if len(w) * 2 >= 12:
        add(w + w)

ROWS = ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "0987654321", "poiuytrewq",
        "lkjhgfdsa", "mnbvcxz", "qazwsxedcrfvtgbyhnujmikolp", "1qaz2wsx3edc4rfv5tgb6yhn",
        "zaq12wsxcde34rfv", "qweasdzxc", "abcdefghijklmnopqrstuvwxyz", "q1w2e3r4t5y6u7i8o9p0",
        "1q2w3e4r5t6y7u8i9o0p", "azertyuiop", "qwertzuiop"]
for row in ROWS:
    for n in range(12, len(row) + 1):
        add(row[:n])
    for reps in range(2, 5):
        r = row * reps
        for n in range(12, min(len(r), 40) + 1):
            add(r[:n])
for a in ["qwerty", "asdfgh", "zxcvbn", "qwertyuiop", "asdfghjkl", "password", "iloveyou"]:
    for b in ["123456", "1234567", "12345678", "123456789", "1234567890", "qwerty",
              "asdfgh", "zxcvbn", "password", "!@#$%^", "!@#$%^&*"]:
        if a != b and len(a + b) >= 12:
            add(a + b)
            add(b + a)
for ch in "0123456789abcdefghijklmnopqrstuvwxyz!":
    for n in range(12, 33):
        add(ch * n)
for pair in ["12", "01", "69", "ab", "xo", "123", "abc", "1234", "abcd", "qwe", "asd"]:
    for n in range(12, 33):
        add((pair * 32)[:n])
for n in range(12, 33):
    add("".join(str(i % 10) for i in range(1, n + 1)))
    add("".join(str(i % 10) for i in range(0, n)))
    add("".join(str((10 - i) % 10) for i in range(1, n + 1)))

sys.stdout.write("\n".join(out) + "\n")
