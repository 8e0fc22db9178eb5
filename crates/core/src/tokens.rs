//! Vault tokens: consistent pseudonyms per scope whose values the vault keeps, sealed, so that
//! a token turns back into its value only through the vault, for an authorised caller, and
//! with an audit event.
//!
//! The token is `tok_` and 100 bits of HMAC-SHA256 under the tenant's token key over the scope
//! and the value ([`boveda_crypto::deid::vault_token`]): the same value in the same scope gives
//! the same token, so joins and counts still work on de-identified data. Its value is sealed
//! with AES-256-GCM under the tenant's token sealing key, bound to tenant, scope and token. Both
//! keys derive from the tenant's index key, which the tenant KEK wraps.

use std::sync::{Arc, Mutex};

use boveda_crypto::deid as kd;
use boveda_crypto::{Dek, FieldAad, Pii, SecretKey};
use boveda_detect::Error as DetectError;
use boveda_detect::operators::KeyedOperator;
use boveda_policy::Action;
use boveda_store::{TenantId, TokenRow};

use crate::Error;
use crate::principal::{Caller, Scope};
use crate::values::View;
use crate::vault::{TenantCache, Vault, now_ms};

/// Most tokens in one detokenize call.
pub const MAX_DETOKENIZE: usize = 1000;

/// The tenant's token key (for the pseudonym) and sealing key (for the kept value).
fn token_keys(t: &TenantCache) -> Result<(SecretKey, Dek), Error> {
    let index = &t.keyring.index;
    let mac = SecretKey::from_bytes(index.mac(b"boveda.vault-token.v1"));
    let seal = Dek::from_key(1, SecretKey::from_bytes(index.mac(b"boveda.token-seal.v1")))?;
    Ok((mac, seal))
}

fn aad<'a>(tenant: &'a TenantId, scope: &'a str, token: &'a str) -> FieldAad<'a> {
    FieldAad {
        tenant: tenant.as_bytes(),
        collection: "vault_tokens",
        record: scope.as_bytes(),
        field: token,
    }
}

/// A scope: 1 to 64 characters of letters, digits and `_ - . :`.
fn valid_scope(scope: &str) -> Result<(), Error> {
    let ok = !scope.is_empty()
        && scope.len() <= 64
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(
            "a token scope is 1 to 64 letters, digits, '_', '-', '.' or ':'".into(),
        ))
    }
}

/// The `vault_token` operator of a de-identification call: it answers with the token and
/// remembers each value it tokenized, for [`Vault::keep_tokens`] to store before the
/// de-identified text is returned.
pub struct TokenIssuer {
    tenant: TenantId,
    t: Arc<TenantCache>,
    key: SecretKey,
    scope: String,
    purpose: String,
    issued: Mutex<Vec<(String, Pii<String>)>>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenIssuer({}, <redacted>)", self.scope)
    }
}

impl KeyedOperator for TokenIssuer {
    fn name(&self) -> &str {
        "vault_token"
    }

    fn apply(&self, _: &str, value: &str) -> Result<String, DetectError> {
        let token = kd::vault_token(&self.key, &self.scope, value);
        self.issued
            .lock()
            .map_err(|_| DetectError::OperatorFailed {
                operator: "vault_token".into(),
                reason: "the token issuer failed".into(),
            })?
            .push((token.clone(), Pii::new(value.to_owned())));
        Ok(token)
    }
}

impl Vault {
    /// A `vault_token` operator for `scope` (default `default`), for a caller allowed to
    /// tokenize (scope `write`, policy action `tokenize`) for `purpose`.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a bad scope; the refusals of a data call.
    pub async fn token_issuer(
        &self,
        caller: &Caller,
        purpose: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Arc<TokenIssuer>, Error> {
        let scope = scope.unwrap_or("default");
        valid_scope(scope)?;
        let (tenant, t) = self.data_call(caller, Scope::Write, purpose).await?;
        let purpose = purpose.unwrap_or_default();
        self.authorize_tenant_wide(caller, tenant, &t, Action::Tokenize, purpose, &[])
            .await?;
        let (key, _) = token_keys(&t)?;
        Ok(Arc::new(TokenIssuer {
            tenant,
            t,
            key,
            scope: scope.to_owned(),
            purpose: purpose.to_owned(),
            issued: Mutex::new(Vec::new()),
        }))
    }

    /// Stores the values an issuer tokenized, sealed, with one audit event (`token.tokenize`:
    /// the scope and how many, no value), in one transaction. Call it before the tokens leave.
    /// Returns how many tokens were new.
    ///
    /// # Errors
    /// Store errors ([`Error::AuditUnavailable`] when the journal cannot be written).
    pub async fn keep_tokens(&self, caller: &Caller, issuer: &TokenIssuer) -> Result<u64, Error> {
        let issued = std::mem::take(
            &mut *issuer
                .issued
                .lock()
                .map_err(|_| Error::Internal("token issuer"))?,
        );
        if issued.is_empty() {
            return Ok(0);
        }
        let (_, seal) = token_keys(&issuer.t)?;
        let now = now_ms();
        let mut rows: Vec<TokenRow> = Vec::with_capacity(issued.len());
        // In token order, each once: two calls storing the same tokens lock them in the same
        // order (on PostgreSQL, another order could deadlock).
        let mut issued = issued;
        issued.sort_by(|a, b| a.0.cmp(&b.0));
        issued.dedup_by(|a, b| a.0 == b.0);
        for (token, value) in &issued {
            rows.push(TokenRow {
                tenant: issuer.tenant,
                scope: issuer.scope.clone(),
                token: token.clone(),
                sealed: seal.seal(
                    value.expose().as_bytes(),
                    &aad(&issuer.tenant, &issuer.scope, token),
                )?,
                created_at: now,
            });
        }
        let mut event = self.event(
            caller,
            issuer.tenant,
            Some(&issuer.t),
            "token.tokenize",
            boveda_audit::Outcome::Allowed,
        );
        event.collection = Some(format!("tokens:{}", issuer.scope));
        event.purpose = Some(issuer.purpose.clone());
        event.reason = Some(format!("{} values tokenized", rows.len()));
        // The event commits in the same transaction as the tokens.
        let events = self.write_events(vec![event]);
        match self.st("insert_tokens").insert_tokens(&rows, &events).await {
            Ok((new, stored)) => {
                self.written(&events, &stored).await;
                Ok(new)
            }
            Err(e) => Err(self.write_failed(e).await),
        }
    }

    /// The values of vault tokens of a scope, in the order asked (`None` for a token the vault
    /// did not issue in that scope), for a caller allowed to detokenize (scope `read`, policy
    /// action `detokenize`, a plain view cap) for `purpose`. The event (`token.detokenize`,
    /// with the number of tokens and no value) is durable before any value is returned.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a bad scope or too many tokens; [`Error::Forbidden`]; the
    /// refusals of a data call.
    pub async fn detokenize(
        &self,
        caller: &Caller,
        purpose: Option<&str>,
        scope: Option<&str>,
        tokens: &[String],
    ) -> Result<Vec<Option<Pii<String>>>, Error> {
        let scope = scope.unwrap_or("default");
        valid_scope(scope)?;
        if tokens.is_empty() || tokens.len() > MAX_DETOKENIZE {
            return Err(Error::BadRequest(format!(
                "tokens: give 1 to {MAX_DETOKENIZE}"
            )));
        }
        let (tenant, t) = self.data_call(caller, Scope::Read, purpose).await?;
        let purpose = purpose.unwrap_or_default();
        let view = self
            .authorize_tenant_wide(caller, tenant, &t, Action::Detokenize, purpose, &[])
            .await?;
        if view != View::Plain {
            // Allowed, but only below plain (by the policy or the caller's own cap): values in
            // clear are what detokenizing shows, so it is refused, and the refusal audited.
            let mut event = self.event(
                caller,
                tenant,
                Some(&t),
                "token.detokenize",
                boveda_audit::Outcome::Denied,
            );
            event.collection = Some(format!("tokens:{scope}"));
            event.purpose = Some(purpose.to_owned());
            event.view = Some(view.as_str().to_owned());
            event.reason = Some("the view cap is below plain".into());
            self.audit(vec![event]).await?;
            return Err(Error::Forbidden(
                "detokenizing shows values in clear: the view granted is not plain".into(),
            ));
        }
        let rows = self.st("tokens").tokens(tenant, scope, tokens).await?;
        let mut event = self.event(
            caller,
            tenant,
            Some(&t),
            "token.detokenize",
            boveda_audit::Outcome::Allowed,
        );
        event.collection = Some(format!("tokens:{scope}"));
        event.purpose = Some(purpose.to_owned());
        event.view = Some(View::Plain.as_str().to_owned());
        event.reason = Some(format!("{} of {} tokens known", rows.len(), tokens.len()));
        self.audit(vec![event]).await?;
        let (_, seal) = token_keys(&t)?;
        tokens
            .iter()
            .map(|token| {
                rows.iter()
                    .find(|r| &r.token == token)
                    .map(|r| {
                        seal.open(&r.sealed, &aad(&tenant, scope, token))
                            .map_err(|_| Error::Integrity("vault token"))?
                            .into_string()
                            .map_err(|_| Error::Integrity("vault token"))
                    })
                    .transpose()
            })
            .collect()
    }
}
