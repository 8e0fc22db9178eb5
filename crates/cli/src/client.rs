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
            (None, Err(_)) => bail!("no credential: set BOVEDA_TOKEN or --token-file"),
        };
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
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(self.token.as_str());
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
