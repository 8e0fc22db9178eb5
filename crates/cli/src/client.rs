//! The HTTPS client commands. Credentials come from `BOVEDA_TOKEN` or a token file, never from
//! argv; the server is trusted through `--ca-cert` (the development certificate by default).

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

/// How to reach and authenticate to the server.
#[derive(Args)]
pub(crate) struct Connection {
    /// Server URL.
    #[arg(
        long,
        env = "BOVEDA_URL",
        default_value = "https://127.0.0.1:8443",
        global = true
    )]
    url: String,
    /// File holding the bearer token (else `BOVEDA_TOKEN`).
    #[arg(long, env = "BOVEDA_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// PEM certificate to trust (default: ./boveda-data/tls/dev-cert.pem when present).
    #[arg(long, env = "BOVEDA_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_parser = ["text", "json"], default_value = "text", global = true)]
    output: String,
}

#[derive(Subcommand)]
pub(crate) enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant name.
        name: String,
        /// Purposes, comma-separated (default: the server's).
        #[arg(long, value_delimiter = ',')]
        purposes: Vec<String>,
        /// Default phone region.
        #[arg(long)]
        region: Option<String>,
    },
    /// List tenants.
    List,
}

#[derive(Subcommand)]
pub(crate) enum ServiceAccountCommand {
    /// Create a service account; prints its API key once.
    Create {
        /// Name.
        name: String,
        /// Tenant id (operators); default: the caller's tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Scopes, comma-separated (read, write, search, erase, admin, keys).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Most revealing view: plain, masked or redacted.
        #[arg(long)]
        max_view: Option<String>,
    },
    /// List service accounts of the caller's tenant.
    List,
}

#[derive(Subcommand)]
pub(crate) enum CollectionCommand {
    /// Create or change a collection from a TOML file (`name = "…"` and `[fields.<name>]`).
    Apply {
        /// The file.
        file: PathBuf,
    },
    /// Show a collection.
    Show {
        /// Name.
        name: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a new key version and start the rewrap.
    Rotate,
    /// Key versions and rewrap progress.
    Status,
    /// Retire an unused key version.
    Retire {
        /// Version.
        version: u32,
    },
}

struct Api {
    http: reqwest::Client,
    url: String,
    token: zeroize::Zeroizing<String>,
    json: bool,
}

impl Api {
    fn new(c: &Connection) -> anyhow::Result<Self> {
        let token = match (&c.token_file, std::env::var("BOVEDA_TOKEN")) {
            (Some(f), _) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read token file {}", f.display()))?,
            (None, Ok(t)) => t,
            (None, Err(_)) => match std::fs::read_to_string(session_file()) {
                Ok(t) => t,
                Err(_) => bail!(
                    "no credential: set BOVEDA_TOKEN, pass --token-file, or run `boveda login`"
                ),
            },
        };
        Self::with_token(c, token)
    }

    /// A client for the public routes (login, invitations), which take no credential.
    fn public(c: &Connection) -> anyhow::Result<Self> {
        Self::with_token(c, String::new())
    }

    fn with_token(c: &Connection, token: String) -> anyhow::Result<Self> {
        let ca = c.ca_cert.clone().or_else(|| {
            let dev = PathBuf::from("./boveda-data/tls/dev-cert.pem");
            dev.exists().then_some(dev)
        });
        let mut builder = reqwest::Client::builder().https_only(true);
        if let Some(ca) = ca {
            let pem = std::fs::read(&ca)
                .with_context(|| format!("cannot read CA certificate {}", ca.display()))?;
            builder =
                builder
                    .tls_certs_only([reqwest::Certificate::from_pem(&pem)
                        .context("CA certificate is not PEM")?]);
        }
        Ok(Self {
            http: builder.build()?,
            url: c.url.trim_end_matches('/').to_owned(),
            token: zeroize::Zeroizing::new(token.trim().to_owned()),
            json: c.output == "json",
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if !self.token.is_empty() {
            req = req.bearer_auth(self.token.as_str());
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let code = value["error"]["code"].as_str().unwrap_or("unknown");
            let msg = value["error"]["message"].as_str().unwrap_or("no message");
            bail!("server answered {status}: {code}: {msg}");
        }
        Ok(value)
    }

    fn print(&self, v: &Value, text: impl FnOnce(&Value) -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            println!("{}", text(v));
        }
    }
}

/// What to try after an error.
pub(crate) fn hint(e: &anyhow::Error) -> &'static str {
    let s = format!("{e:#}");
    if s.contains("no credential") {
        "export BOVEDA_TOKEN=… or pass --token-file (the bootstrap credential is in boveda-data/bootstrap-operator.token)"
    } else if s.contains("cannot reach") {
        "is `boveda serve` running at --url, and does --ca-cert name its certificate?"
    } else if s.contains("unauthenticated") {
        "the token is not valid; check BOVEDA_TOKEN or --token-file"
    } else if s.contains("in use by another boveda process") {
        "stop the other `boveda serve` on this data directory, or give this one its own data_dir"
    } else if s.contains("config") || s.contains("configuration") {
        "fix the named setting in the config file, the BOVEDA_* variable or the --set flag"
    } else {
        "run the command with --help, or see the README"
    }
}

pub(crate) async fn tenant(c: &Connection, cmd: TenantCommand) -> anyhow::Result<ExitCode> {
    let api = Api::new(c)?;
    match cmd {
        TenantCommand::Create {
            name,
            purposes,
            region,
        } => {
            let mut body = json!({"name": name});
            if !purposes.is_empty() || region.is_some() {
                body["settings"] = json!({
                    "purposes": if purposes.is_empty() { json!(["customer_support", "billing", "fraud_prevention", "legal_obligation", "data_subject_request", "analytics"]) } else { json!(purposes) },
                    "default_region": region.unwrap_or_else(|| "CN".into()),
                });
            }
            let v = api
                .call(reqwest::Method::POST, "/v1/tenants", Some(body))
                .await?;
            api.print(&v, |v| {
                format!(
                    "tenant {} created: {}",
                    v["name"].as_str().unwrap_or(""),
                    v["id"].as_str().unwrap_or("")
                )
            });
        }
        TenantCommand::List => {
            let v = api.call(reqwest::Method::GET, "/v1/tenants", None).await?;
            api.print(&v, |v| {
                v["tenants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        format!(
                            "{}  {}",
                            t["id"].as_str().unwrap_or(""),
                            t["name"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn service_account(
    c: &Connection,
    cmd: ServiceAccountCommand,
) -> anyhow::Result<ExitCode> {
    let api = Api::new(c)?;
    match cmd {
        ServiceAccountCommand::Create {
            name,
            tenant,
            scopes,
            max_view,
        } => {
            let mut body = json!({"name": name});
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            if let Some(v) = max_view {
                body["max_view"] = json!(v);
            }
            let path = match tenant {
                Some(t) => format!("/v1/tenants/{t}/service-accounts"),
                None => "/v1/service-accounts".to_owned(),
            };
            let v = api.call(reqwest::Method::POST, &path, Some(body)).await?;
            api.print(&v, |v| {
                format!(
                    "service account {} created\nAPI key (shown once): {}",
                    v["service_account"]["id"].as_str().unwrap_or(""),
                    v["api_key"].as_str().unwrap_or("")
                )
            });
        }
        ServiceAccountCommand::List => {
            let v = api
                .call(reqwest::Method::GET, "/v1/service-accounts", None)
                .await?;
            api.print(&v, |v| {
                v["service_accounts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        format!(
                            "{}  {}  {}",
                            a["id"].as_str().unwrap_or(""),
                            a["name"].as_str().unwrap_or(""),
                            a["scopes"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn collection(c: &Connection, cmd: CollectionCommand) -> anyhow::Result<ExitCode> {
    let api = Api::new(c)?;
    match cmd {
        CollectionCommand::Apply { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let mut doc: toml::Table = toml::from_str(&text)
                .with_context(|| format!("{} is not valid TOML", file.display()))?;
            let name = match doc.remove("name") {
                Some(toml::Value::String(n)) => n,
                _ => bail!("{}: a top-level `name = \"…\"` is required", file.display()),
            };
            let body = serde_json::to_value(&doc)?;
            let v = api
                .call(
                    reqwest::Method::PUT,
                    &format!("/v1/collections/{name}"),
                    Some(body),
                )
                .await?;
            api.print(&v, |v| {
                format!("collection {name} at version {}", v["version"])
            });
        }
        CollectionCommand::Show { name } => {
            let v = api
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/collections/{name}"),
                    None,
                )
                .await?;
            api.print(&v, |v| serde_json::to_string_pretty(v).unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn keys(c: &Connection, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let api = Api::new(c)?;
    let v = match cmd {
        KeysCommand::Rotate => {
            api.call(reqwest::Method::POST, "/v1/keys/rotate", None)
                .await?
        }
        KeysCommand::Status => api.call(reqwest::Method::GET, "/v1/keys", None).await?,
        KeysCommand::Retire { version } => {
            api.call(
                reqwest::Method::POST,
                &format!("/v1/keys/{version}/retire"),
                None,
            )
            .await?
        }
    };
    api.print(&v, |v| {
        let mut out = format!(
            "active version {}; rewrap {}% ({} pending)",
            v["active_version"], v["rewrap_progress_percent"], v["rewrap_pending"]
        );
        for k in v["versions"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "\n  v{}  {}  {} subjects",
                k["version"],
                k["state"].as_str().unwrap_or(""),
                k["subjects"]
            ));
        }
        out
    });
    Ok(ExitCode::SUCCESS)
}

/// Where `boveda login` keeps the session token: the user's config directory, mode 0600.
pub(crate) fn session_file() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("boveda").join("session")
}

/// Reads `n` lines from standard input: secrets and personal data never come from argv.
fn stdin_lines(n: usize, what: &str) -> anyhow::Result<Vec<zeroize::Zeroizing<String>>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut line = zeroize::Zeroizing::new(String::new());
        std::io::stdin().read_line(&mut line)?;
        let t = line.trim_end_matches(['\r', '\n']).to_owned();
        if t.is_empty() {
            bail!("expected {what} on standard input, one per line");
        }
        out.push(zeroize::Zeroizing::new(t));
    }
    Ok(out)
}

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Invite a staff user: email and name on standard input, one per line.
    Invite {
        /// Roles, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
    },
    /// List staff users.
    List,
    /// Show one user.
    Show {
        /// User id.
        id: String,
    },
    /// Change roles, force a password change, disable or enable.
    Update {
        /// User id.
        id: String,
        /// New roles, comma-separated.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Require a password change.
        #[arg(long)]
        must_change_password: bool,
        /// Disable the account (and end its sessions).
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Enable the account.
        #[arg(long)]
        enable: bool,
    },
    /// Replace agreements and trainings from a JSON file.
    Eligibility {
        /// User id.
        id: String,
        /// `{"agreements": [...], "trainings": [...]}`.
        file: PathBuf,
    },
    /// Revoke every session of a user.
    RevokeSessions {
        /// User id.
        id: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum MfaCommand {
    /// Accept an invitation: the invitation and a new password on standard input. Prints the
    /// otpauth URI for the authenticator app and writes its QR code.
    AcceptInvite {
        /// Where to write the QR code (SVG).
        #[arg(long, default_value = "boveda-totp.svg")]
        qr: PathBuf,
    },
    /// Confirm enrolment: the invitation and a first code on standard input. Prints recovery
    /// codes once.
    Confirm,
    /// Step up: a fresh code on standard input.
    StepUp,
}

#[derive(Subcommand)]
pub(crate) enum PolicyCommand {
    /// Apply a policy document (TOML or JSON).
    Apply {
        /// The file.
        file: PathBuf,
    },
    /// Show the current policy.
    Show,
    /// Explain a decision.
    Explain {
        /// A staff user whose roles and eligibility to use.
        #[arg(long)]
        user: Option<String>,
        /// Roles to use instead, comma-separated.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Action.
        #[arg(long)]
        action: String,
        /// Collection.
        #[arg(long)]
        collection: String,
        /// Field.
        #[arg(long)]
        field: Option<String>,
        /// Purpose.
        #[arg(long)]
        purpose: String,
        /// Minutes since the last MFA check.
        #[arg(long)]
        mfa_age_minutes: Option<u32>,
    },
}

/// `boveda login`: email on the command line is avoided too; tenant id as a flag, then email,
/// password and a TOTP (or recovery) code on standard input.
pub(crate) async fn login(c: &Connection, tenant: &str) -> anyhow::Result<ExitCode> {
    let api = Api::public(c)?;
    let lines = stdin_lines(3, "email, password and TOTP code")?;
    let v = api
        .call(
            reqwest::Method::POST,
            "/v1/auth/login",
            Some(json!({"tenant_id": tenant, "email": lines[0].as_str(), "password": lines[1].as_str(), "code": lines[2].as_str()})),
        )
        .await?;
    let token = v["session_token"].as_str().unwrap_or_default();
    let path = session_file();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&path);
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        opts.open(&path)?.write_all(token.as_bytes())?;
    }
    let mut shown = v.clone();
    shown["session_token"] = json!(format!("saved to {}", path.display()));
    api.print(&shown, |v| {
        let mut out = format!("logged in; session saved to {}", path.display());
        if v["password_change_required"] == true {
            out.push_str("\nyour password must be changed before anything else");
        } else if v["password_change_recommended"] == true {
            out.push_str("\nyour password is old: consider changing it");
        }
        out
    });
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn user(c: &Connection, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let api = Api::new(c)?;
    let v = match cmd {
        UserCommand::Invite { roles } => {
            let lines = stdin_lines(2, "email and name")?;
            api.call(
                reqwest::Method::POST,
                "/v1/users",
                Some(
                    json!({"email": lines[0].as_str(), "name": lines[1].as_str(), "roles": roles}),
                ),
            )
            .await?
        }
        UserCommand::List => api.call(reqwest::Method::GET, "/v1/users", None).await?,
        UserCommand::Show { id } => {
            api.call(reqwest::Method::GET, &format!("/v1/users/{id}"), None)
                .await?
        }
        UserCommand::Update {
            id,
            roles,
            must_change_password,
            disable,
            enable,
        } => {
            let mut body = json!({});
            if !roles.is_empty() {
                body["roles"] = json!(roles);
            }
            if must_change_password {
                body["must_change_password"] = json!(true);
            }
            if disable || enable {
                body["disabled"] = json!(disable);
            }
            api.call(
                reqwest::Method::PATCH,
                &format!("/v1/users/{id}"),
                Some(body),
            )
            .await?
        }
        UserCommand::Eligibility { id, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let body: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            api.call(
                reqwest::Method::PUT,
                &format!("/v1/users/{id}/eligibility"),
                Some(body),
            )
            .await?
        }
        UserCommand::RevokeSessions { id } => {
            api.call(
                reqwest::Method::POST,
                &format!("/v1/users/{id}/sessions/revoke"),
                None,
            )
            .await?
        }
    };
    api.print(&v, |v| serde_json::to_string_pretty(v).unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn mfa(c: &Connection, cmd: MfaCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        MfaCommand::AcceptInvite { qr } => {
            let api = Api::public(c)?;
            let lines = stdin_lines(2, "invitation and new password")?;
            let v = api
                .call(
                    reqwest::Method::POST,
                    "/v1/auth/invite/accept",
                    Some(json!({"invite": lines[0].as_str(), "password": lines[1].as_str()})),
                )
                .await?;
            std::fs::write(&qr, v["qr_svg"].as_str().unwrap_or_default())
                .with_context(|| format!("cannot write {}", qr.display()))?;
            api.print(&v, |v| {
                format!(
                    "add this to your authenticator app (QR code in {}):\n{}",
                    qr.display(),
                    v["otpauth_uri"].as_str().unwrap_or("")
                )
            });
        }
        MfaCommand::Confirm => {
            let api = Api::public(c)?;
            let lines = stdin_lines(2, "invitation and code")?;
            let v = api
                .call(
                    reqwest::Method::POST,
                    "/v1/auth/mfa/confirm",
                    Some(json!({"invite": lines[0].as_str(), "code": lines[1].as_str()})),
                )
                .await?;
            api.print(&v, |v| {
                let codes: Vec<&str> = v["recovery_codes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                format!(
                    "enrolled. recovery codes (shown once, keep them safe):\n{}",
                    codes.join("\n")
                )
            });
        }
        MfaCommand::StepUp => {
            let api = Api::new(c)?;
            let lines = stdin_lines(1, "a TOTP code")?;
            let v = api
                .call(
                    reqwest::Method::POST,
                    "/v1/auth/step-up",
                    Some(json!({"code": lines[0].as_str()})),
                )
                .await?;
            api.print(&v, |_| "MFA confirmed".to_owned());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn policy(c: &Connection, cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    let api = Api::new(c)?;
    let v = match cmd {
        PolicyCommand::Apply { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let body: Value = if file.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", file.display()))?
            } else {
                let t: toml::Table = toml::from_str(&text)
                    .with_context(|| format!("{} is not valid TOML", file.display()))?;
                serde_json::to_value(t)?
            };
            api.call(reqwest::Method::PUT, "/v1/policy", Some(body))
                .await?
        }
        PolicyCommand::Show => api.call(reqwest::Method::GET, "/v1/policy", None).await?,
        PolicyCommand::Explain {
            user,
            roles,
            action,
            collection,
            field,
            purpose,
            mfa_age_minutes,
        } => {
            let mut body = json!({"action": action, "collection": collection, "purpose": purpose});
            if let Some(u) = user {
                body["user_id"] = json!(u);
            }
            if !roles.is_empty() {
                body["roles"] = json!(roles);
            }
            if let Some(f) = field {
                body["field"] = json!(f);
            }
            if let Some(m) = mfa_age_minutes {
                body["mfa_age_minutes"] = json!(m);
            }
            let v = api
                .call(reqwest::Method::POST, "/v1/policy/explain", Some(body))
                .await?;
            let code = if v["decision"] == "allow" { 0 } else { 1 };
            api.print(&v, |v| match v["decision"].as_str() {
                Some("allow") => format!(
                    "allow by rule `{}` up to view {}",
                    v["rule"].as_str().unwrap_or(""),
                    v["view"].as_str().unwrap_or("")
                ),
                _ => format!(
                    "deny ({}); missing: {}",
                    v["rule"]
                        .as_str()
                        .map_or("no rule allows".to_owned(), |r| format!("rule `{r}`")),
                    v["missing"]
                ),
            });
            // Exit 1 for a refusal: `explain` is a check.
            return Ok(ExitCode::from(code));
        }
    };
    api.print(&v, |v| serde_json::to_string_pretty(v).unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub(crate) enum IncidentCommand {
    /// Open an incident from a JSON file (`title`, `detected_at`, `severity`, `scope`, ...).
    Open {
        /// The file.
        file: PathBuf,
    },
    /// List incidents.
    List,
    /// Show one incident with its timeline.
    Show {
        /// Incident id.
        id: String,
    },
    /// Move an incident forward: contained, notifying or closed.
    State {
        /// Incident id.
        id: String,
        /// The new state.
        state: String,
    },
    /// Run a containment action: revoke_principal, force_password_reset, suspend_principal
    /// (with --principal), rotate_keys, freeze_tenant.
    Contain {
        /// Incident id.
        id: String,
        /// The action.
        action: String,
        /// The principal, for the principal actions.
        #[arg(long)]
        principal: Option<String>,
    },
    /// Subjects, categories and fields exposed, from the audit log.
    BlastRadius {
        /// Incident id.
        id: String,
        /// Skip this many subjects (they come sorted by first exposure).
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Subjects in this page (at most 10,000).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Read the audit log anew instead of the snapshot kept a minute for paging.
        #[arg(long)]
        fresh: bool,
    },
    /// Plan the notices: recipients (subject or guardian), channels, announcement, regulators.
    PlanNotices {
        /// Incident id.
        id: String,
    },
    /// Approve the notice plan (a privacy officer other than the incident's creator).
    ApproveNotices {
        /// Incident id.
        id: String,
    },
    /// The notices and their delivery status.
    Notices {
        /// Incident id.
        id: String,
    },
    /// The regulator's report: gdpr (Art. 33) or pipl (Art. 57).
    Report {
        /// Incident id.
        id: String,
        /// gdpr or pipl.
        jurisdiction: String,
        /// es, en or zh.
        #[arg(long)]
        language: Option<String>,
    },
}

pub(crate) async fn incident(c: &Connection, cmd: IncidentCommand) -> anyhow::Result<ExitCode> {
    let api = Api::new(c)?;
    let v = match cmd {
        IncidentCommand::Open { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let body: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            api.call(reqwest::Method::POST, "/v1/incidents", Some(body))
                .await?
        }
        IncidentCommand::List => {
            api.call(reqwest::Method::GET, "/v1/incidents", None)
                .await?
        }
        IncidentCommand::Show { id } => {
            api.call(reqwest::Method::GET, &format!("/v1/incidents/{id}"), None)
                .await?
        }
        IncidentCommand::State { id, state } => {
            api.call(
                reqwest::Method::POST,
                &format!("/v1/incidents/{id}/state"),
                Some(json!({"state": state})),
            )
            .await?
        }
        IncidentCommand::Contain {
            id,
            action,
            principal,
        } => {
            let mut body = json!({"action": action});
            if let Some(p) = principal {
                body["principal_id"] = json!(p);
            }
            api.call(
                reqwest::Method::POST,
                &format!("/v1/incidents/{id}/containment"),
                Some(body),
            )
            .await?
        }
        IncidentCommand::BlastRadius {
            id,
            offset,
            limit,
            fresh,
        } => {
            api.call(
                reqwest::Method::GET,
                &format!(
                    "/v1/incidents/{id}/blast-radius?offset={offset}&limit={limit}&fresh={fresh}"
                ),
                None,
            )
            .await?
        }
        IncidentCommand::PlanNotices { id } => {
            api.call(
                reqwest::Method::POST,
                &format!("/v1/incidents/{id}/notices/plan"),
                None,
            )
            .await?
        }
        IncidentCommand::ApproveNotices { id } => {
            api.call(
                reqwest::Method::POST,
                &format!("/v1/incidents/{id}/notices/approve"),
                None,
            )
            .await?
        }
        IncidentCommand::Notices { id } => {
            api.call(
                reqwest::Method::GET,
                &format!("/v1/incidents/{id}/notices"),
                None,
            )
            .await?
        }
        IncidentCommand::Report {
            id,
            jurisdiction,
            language,
        } => {
            let q = language
                .map(|l| format!("?language={l}"))
                .unwrap_or_default();
            api.call(
                reqwest::Method::GET,
                &format!("/v1/incidents/{id}/reports/{jurisdiction}{q}"),
                None,
            )
            .await?
        }
    };
    api.print(&v, |v| serde_json::to_string_pretty(v).unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}
