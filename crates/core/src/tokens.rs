//! Vault tokens: consistent pseudonyms per scope whose values the vault keeps, sealed, so that
//! a token turns back into its value only through the vault, for an authorised caller, and
//! with an audit event.
//!
//! The token is `tok_` and 100 bits of HMAC-SHA256 under the tenant's token key over the scope
//! and the value ([`boveda_crypto::deid::vault_token`]): the same value in the same scope gives
//! the same token, so joins and counts still work on de-identified data. Its value is sealed
//! with AES-256-GCM, bound to tenant, scope and token: under the data subject's own key when the
//! caller names the subject (then erasing the subject erases the value, in every copy of the
//! data, and detokenizing it is an access to that subject), or else under the tenant's token
//! sealing key. The token key and the sealing key derive from the tenant's index key, which the
//! tenant KEK wraps.

use std::sync::{Arc, Mutex};

use boveda_crypto::deid as kd;
use boveda_crypto::{Dek, FieldAad, Pii, SecretKey};
use boveda_detect::Error as DetectError;
use boveda_detect::operators::KeyedOperator;
use boveda_policy::Action;
use boveda_store::{SubjectId, TenantId, TokenRow};

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
    subject: Option<SubjectId>,
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
    /// tokenize (scope `write`, policy action `tokenize`) for `purpose`. With `subject`, the
    /// values are that subject's (sealed under its key, erased with it).
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a bad scope; [`Error::NotFound`] for an unknown subject; the
    /// refusals of a data call.
    pub async fn token_issuer(
        &self,
        caller: &Caller,
        purpose: Option<&str>,
        scope: Option<&str>,
        subject: Option<SubjectId>,
    ) -> Result<Arc<TokenIssuer>, Error> {
        let scope = scope.unwrap_or("default");
        valid_scope(scope)?;
        let (tenant, mut t, _) = self.data_call(caller, Scope::Write, purpose).await?;
        let purpose = purpose.unwrap_or_default();
        let subjects: Vec<SubjectId> = subject.into_iter().collect();
        self.authorize_tenant_wide(caller, tenant, &t, Action::Tokenize, purpose, &subjects)
            .await?;
        if let Some(s) = subject
            && !self.deks(tenant, &mut t, &[s]).await?.contains_key(&s)
        {
            return Err(Error::NotFound("subject"));
        }
        let (key, _) = token_keys(&t)?;
        Ok(Arc::new(TokenIssuer {
            tenant,
            t,
            key,
            scope: scope.to_owned(),
            purpose: purpose.to_owned(),
            subject,
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
        let mut issued = std::mem::take(
            &mut *issuer
                .issued
                .lock()
                .map_err(|_| Error::Internal("token issuer"))?,
        );
        if issued.is_empty() {
            return Ok(0);
        }
        let mut t = Arc::clone(&issuer.t);
        let seal = match issuer.subject {
            Some(s) => self
                .deks(issuer.tenant, &mut t, &[s])
                .await?
                .remove(&s)
                .ok_or(Error::NotFound("subject"))?,
            None => token_keys(&t)?.1,
        };
        let now = now_ms();
        let mut rows: Vec<TokenRow> = Vec::with_capacity(issued.len());
        // In token order, each once: two calls storing the same tokens lock them in the same
        // order (on PostgreSQL, another order could deadlock).
        issued.sort_by(|a, b| a.0.cmp(&b.0));
        issued.dedup_by(|a, b| a.0 == b.0);
        for (token, value) in &issued {
            rows.push(TokenRow {
                tenant: issuer.tenant,
                scope: issuer.scope.clone(),
                token: token.clone(),
                subject: issuer.subject,
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
        event.subjects = Self::subjects(&t, &issuer.subject.into_iter().collect::<Vec<_>>());
        event.reason = Some(format!("{} values tokenized", rows.len()));
        // The event commits in the same transaction as the tokens.
        let events = self.write_events(vec![event]);
        match self.st("insert_tokens").insert_tokens(&rows, &events).await {
            Ok((new, stored)) => {
                self.written(events, &stored).await;
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
        let (tenant, mut t, _reading) = self.data_call(caller, Scope::Read, purpose).await?;
        let purpose = purpose.unwrap_or_default();
        // The rows first (still sealed): the subjects they belong to take part in the decision
        // and are named in the event.
        let rows = self.st("tokens").tokens(tenant, scope, tokens).await?;
        let mut subjects: Vec<SubjectId> = rows.iter().filter_map(|r| r.subject).collect();
        subjects.sort_unstable();
        subjects.dedup();
        let view = self
            .authorize_tenant_wide(caller, tenant, &t, Action::Detokenize, purpose, &subjects)
            .await?;
        let mut event = self.event(
            caller,
            tenant,
            Some(&t),
            "token.detokenize",
            if view == View::Plain {
                boveda_audit::Outcome::Allowed
            } else {
                boveda_audit::Outcome::Denied
            },
        );
        event.collection = Some(format!("tokens:{scope}"));
        event.purpose = Some(purpose.to_owned());
        event.subjects = Self::subjects(&t, &subjects);
        event.view = Some(view.as_str().into());
        if view != View::Plain {
            // Allowed, but only below plain (by the policy or the caller's own cap): values in
            // clear are what detokenizing shows, so it is refused, and the refusal audited.
            event.reason = Some("the view cap is below plain".into());
            self.audit(vec![event]).await?;
            return Err(Error::Forbidden(
                "detokenizing shows values in clear: the view granted is not plain".into(),
            ));
        }
        event.reason = Some(format!("{} of {} tokens known", rows.len(), tokens.len()));
        self.audit(vec![event]).await?;
        let deks = self.deks(tenant, &mut t, &subjects).await?;
        let tenant_seal = token_keys(&t)?.1;
        let open = |r: &TokenRow| -> Result<Option<Pii<String>>, Error> {
            let key = match r.subject {
                // Erased meanwhile: its key is gone, and so is the value.
                Some(s) => match deks.get(&s) {
                    Some(k) => k,
                    None => return Ok(None),
                },
                None => &tenant_seal,
            };
            key.open(&r.sealed, &aad(&tenant, scope, &r.token))
                .map_err(|_| Error::Integrity("vault token"))?
                .into_string()
                .map(Some)
                .map_err(|_| Error::Integrity("vault token"))
        };
        let mut out = Vec::with_capacity(tokens.len());
        for token in tokens {
            let mut value = None;
            for r in rows.iter().filter(|r| &r.token == token) {
                value = open(r)?;
                if value.is_some() {
                    break;
                }
            }
            out.push(value);
        }
        Ok(out)
    }
}
