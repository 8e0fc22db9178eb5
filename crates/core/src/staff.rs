//! Staff identity: invitations, passwords (Argon2id, NIST SP 800-63B rules), TOTP MFA
//! (RFC 6238) with replay protection and recovery codes, lockout, sessions with idle and
//! absolute limits, step-up, password age, roles and eligibility (agreements and training).
//!
//! Every piece of state that must hold across nodes (failed logins, lockout, the last accepted
//! TOTP step, recovery codes, sessions) lives in the store and changes by compare-and-swap.
//! Staff names, emails and TOTP secrets are personal data: they are sealed under the user's own
//! DEK, like a data subject's fields, and found by a keyed digest of the email.

use crate::principal::{Caller, Grants, Principal, PrincipalKind, Scope, StaffSession};
use crate::vault::{Vault, decode_fields, encode_fields, now_ms};
use crate::{Error, View};
use boveda_crypto::{Dek, FieldAad, Pii, token};
use boveda_store::{PrincipalId, SessionRow, SubjectId, SubjectKeyRow, TenantId, UserRow};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Consecutive failures that lock an account.
pub const LOCK_AFTER: u32 = 10;
/// How long a locked account stays locked.
pub(crate) const LOCK_FOR_MS: i64 = 30 * 60 * 1000;
const INVITE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;
const LAST_SEEN_GRANULARITY_MS: i64 = 30_000;

/// A confidentiality agreement on file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    /// Version of the agreement text.
    pub version: String,
    /// When it was signed, Unix milliseconds.
    pub signed_at: i64,
    /// When it lapses, Unix milliseconds; `None` for never.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// A completed training on file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// Course name.
    pub course: String,
    /// When it was completed, Unix milliseconds.
    pub completed_at: i64,
    /// When it lapses, Unix milliseconds; `None` for never.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// A user's eligibility records, managed by the tenant admin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eligibility {
    /// Confidentiality agreements.
    #[serde(default)]
    pub agreements: Vec<Agreement>,
    /// Trainings.
    #[serde(default)]
    pub trainings: Vec<Training>,
}

impl Eligibility {
    fn current(start: i64, end: Option<i64>, now: i64) -> bool {
        start <= now && end.is_none_or(|e| now < e)
    }

    /// Whether an agreement is current.
    pub fn agreement_current(&self, now: i64) -> bool {
        self.agreements
            .iter()
            .any(|a| Self::current(a.signed_at, a.expires_at, now))
    }

    /// Whether a training is current.
    pub fn training_current(&self, now: i64) -> bool {
        self.trainings
            .iter()
            .any(|t| Self::current(t.completed_at, t.expires_at, now))
    }
}

/// The non-personal state of a user, kept as JSON in the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct UserState {
    roles: Vec<String>,
    password: Option<String>,
    password_changed_at: Option<i64>,
    must_change: bool,
    failed_logins: u32,
    locked_until: i64,
    invite_hash: Option<String>,
    invite_expires_at: i64,
    totp_confirmed: bool,
    last_totp_step: u64,
    recovery: Vec<String>,
    disabled: bool,
    eligibility: Eligibility,
}

/// A staff user as admins see it.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Id.
    pub id: PrincipalId,
    /// Name (staff personal data, shown to admins).
    pub name: String,
    /// Email.
    pub email: String,
    /// Roles.
    pub roles: Vec<String>,
    /// TOTP enrolled and confirmed.
    pub mfa_enrolled: bool,
    /// Password set.
    pub active: bool,
    /// Locked by failed logins until this time, Unix milliseconds, if in the future.
    pub locked_until: Option<i64>,
    /// A password change is required.
    pub must_change_password: bool,
    /// Disabled.
    pub disabled: bool,
    /// Eligibility records.
    pub eligibility: Eligibility,
    /// Agreement and training current now.
    pub eligible: bool,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
}

/// A new user with the invitation token (shown once).
#[derive(Debug)]
pub struct Invited {
    /// The user.
    pub user: User,
    /// The invitation, to be given to the person; valid 7 days.
    pub invite: token::Token,
}

/// Changes to a user.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New roles.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Require a password change at next use.
    #[serde(default)]
    pub must_change_password: Option<bool>,
    /// Disable or enable.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// What enrolment gives the person: the otpauth URI and a QR code of it.
#[derive(Debug, Serialize)]
pub struct Enrollment {
    /// `otpauth://totp/...` with the secret.
    pub otpauth_uri: String,
    /// The URI as a QR code (SVG).
    pub qr_svg: String,
}

/// A logged-in session.
#[derive(Debug, Serialize)]
pub struct LoginResult {
    /// The session token (shown once).
    pub session_token: String,
    /// Absolute end of the session, Unix milliseconds.
    pub expires_at: i64,
    /// A password change is required before anything else.
    pub password_change_required: bool,
    /// The password is older than the tenant's reminder age.
    pub password_change_recommended: bool,
}

fn state_of(row: &UserRow) -> Result<UserState, Error> {
    serde_json::from_str(&row.state).map_err(|_| Error::Integrity("user state"))
}

fn with_state(row: &UserRow, state: &UserState) -> Result<UserRow, Error> {
    Ok(UserRow {
        state: serde_json::to_string(state).map_err(|_| Error::Internal("user state encoding"))?,
        version: row.version + 1,
        ..row.clone()
    })
}

/// Recovery codes carry 60 bits: they are stored as a keyed hash (the tenant's index key), so
/// a copy of the database alone does not allow an offline search.
fn recovery_hash(t: &crate::vault::TenantCache, code: &str) -> String {
    let mut input = b"boveda.recovery.v1:".to_vec();
    input.extend_from_slice(code.as_bytes());
    hex::encode(t.keyring.index.mac(&input))
}

fn sha_hex(s: &str) -> String {
    hex::encode(boveda_crypto::sha256(s.as_bytes()))
}

/// Splits an invitation token `bvd_iv_<tenant>_<user>_<secret>`.
fn parse_invite(t: &str) -> Option<(TenantId, PrincipalId)> {
    let rest = t.strip_prefix("bvd_iv_")?;
    let mut parts = rest.splitn(3, '_');
    let tenant = parts.next()?.parse().ok()?;
    let user = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((tenant, user))
}

fn check_roles(roles: &[String]) -> Result<(), Error> {
    if roles.is_empty() || roles.len() > 32 {
        return Err(Error::invalid("roles", "between_1_and_32_roles"));
    }
    if roles
        .iter()
        .any(|r| !crate::schema::valid_name(r) || r == "platform_operator")
    {
        return Err(Error::invalid("roles", "role_name"));
    }
    Ok(())
}

impl Vault {
    /// The caller's tenant if it may administer it: a staff `tenant_admin` or a service account
    /// with the `admin` scope.
    pub(crate) fn admin_of(caller: &Caller) -> Result<TenantId, Error> {
        let p = &caller.principal;
        let tenant = p
            .tenant
            .ok_or_else(|| Error::Forbidden("platform operators manage tenants only".into()))?;
        let ok = match p.kind {
            PrincipalKind::Staff => p.has_role("tenant_admin"),
            PrincipalKind::Service => p.grants.allows(Scope::Admin),
            PrincipalKind::Operator => false,
        };
        if ok {
            Ok(tenant)
        } else {
            Err(Error::Forbidden(
                "the tenant_admin role or the admin scope is required".into(),
            ))
        }
    }

    async fn user_dek(&self, tenant: TenantId, user: PrincipalId) -> Result<Dek, Error> {
        let subject = SubjectId::from_bytes(*user.as_bytes());
        let mut t = self.cached(tenant).await?;
        let mut deks = self.deks(tenant, &mut t, &[subject]).await?;
        deks.remove(&subject)
            .ok_or(Error::Integrity("user key missing"))
    }

    fn seal_user(
        tenant: TenantId,
        user: PrincipalId,
        dek: &Dek,
        fields: &[(&str, &str)],
        into: &mut BTreeMap<String, Vec<u8>>,
    ) -> Result<(), Error> {
        for (name, value) in fields {
            let aad = FieldAad {
                tenant: tenant.as_bytes(),
                collection: "_staff",
                record: user.as_bytes(),
                field: name,
            };
            into.insert((*name).to_owned(), dek.seal(value.as_bytes(), &aad)?);
        }
        Ok(())
    }

    fn open_user(
        tenant: TenantId,
        user: PrincipalId,
        dek: &Dek,
        sealed: &BTreeMap<String, Vec<u8>>,
        name: &str,
    ) -> Result<Pii<String>, Error> {
        let ct = sealed
            .get(name)
            .ok_or(Error::Integrity("user field missing"))?;
        let aad = FieldAad {
            tenant: tenant.as_bytes(),
            collection: "_staff",
            record: user.as_bytes(),
            field: name,
        };
        Ok(dek.open(ct, &aad)?.into_string()?)
    }

    async fn user_view(&self, row: &UserRow) -> Result<User, Error> {
        let st = state_of(row)?;
        let dek = self.user_dek(row.tenant, row.id).await?;
        let sealed = decode_fields(&row.sealed)?;
        let now = now_ms();
        Ok(User {
            id: row.id,
            // Staff identity shown to the tenant's admins, who manage these accounts.
            name: Self::open_user(row.tenant, row.id, &dek, &sealed, "name")?
                .expose()
                .clone(),
            email: Self::open_user(row.tenant, row.id, &dek, &sealed, "email")?
                .expose()
                .clone(),
            roles: st.roles.clone(),
            mfa_enrolled: st.totp_confirmed,
            active: st.password.is_some(),
            locked_until: (st.locked_until > now).then_some(st.locked_until),
            must_change_password: st.must_change,
            disabled: st.disabled,
            eligible: st.eligibility.agreement_current(now) && st.eligibility.training_current(now),
            eligibility: st.eligibility,
            created_at: row.created_at,
        })
    }

    fn login_digest(&self, t: &crate::vault::TenantCache, email: &str) -> Vec<u8> {
        t.keyring
            .index
            .digest("_staff", "email", email.to_lowercase().as_bytes())
            .to_vec()
    }

    /// Invites a staff user (admin). The invitation token is shown once and lets the person set
    /// a password and enrol TOTP.
    ///
    /// # Errors
    /// [`Error::Forbidden`], [`Error::Invalid`], [`Error::Conflict`] for a taken email.
    pub async fn invite_user(
        &self,
        caller: &Caller,
        email: &str,
        name: &str,
        roles: Vec<String>,
    ) -> Result<Invited, Error> {
        let tenant = Self::admin_of(caller)?;
        check_roles(&roles)?;
        let email_spec = crate::schema::FieldSpec {
            kind: crate::schema::FieldType::Email,
            country: None,
            category: crate::schema::Category::Contact,
            grade: crate::schema::Grade::L2,
            searchable: true,
            required: true,
        };
        let name_spec = crate::schema::FieldSpec {
            kind: crate::schema::FieldType::PersonName,
            ..email_spec.clone()
        };
        let email = crate::values::normalise(
            &email_spec,
            &serde_json::Value::String(email.to_owned()),
            "CN",
        )
        .map_err(|rule| Error::invalid("email", rule))?;
        let name = crate::values::normalise(
            &name_spec,
            &serde_json::Value::String(name.to_owned()),
            "CN",
        )
        .map_err(|rule| Error::invalid("name", rule))?;
        let t = self.cached(tenant).await?;
        let digest = self.login_digest(&t, email.stored.expose());
        let id = PrincipalId::generate();
        let active = t
            .keyring
            .keks
            .get(&t.keyring.active)
            .ok_or(Error::Internal("active key missing"))?;
        let dek = Dek::generate(1)?;
        let subject = SubjectId::from_bytes(*id.as_bytes());
        let now = now_ms();
        let mut sealed = BTreeMap::new();
        Self::seal_user(
            tenant,
            id,
            &dek,
            &[
                ("name", name.stored.expose()),
                ("email", email.stored.expose()),
            ],
            &mut sealed,
        )?;
        let secret = token::Token::generate("")?;
        let invite = token::Token::from_text(format!("bvd_iv_{tenant}_{id}_{}", secret.expose()));
        let state = UserState {
            roles: roles.clone(),
            invite_hash: Some(sha_hex(invite.expose())),
            invite_expires_at: now + INVITE_TTL_MS,
            ..UserState::default()
        };
        let row = UserRow {
            tenant,
            id,
            login_digest: digest,
            state: serde_json::to_string(&state)
                .map_err(|_| Error::Internal("user state encoding"))?,
            sealed: encode_fields(&sealed),
            version: 1,
            created_at: now,
        };
        if self
            .st("user_by_login")
            .user_by_login(tenant, &row.login_digest)
            .await?
            .is_some()
        {
            return Err(Error::Conflict("a user with this email exists".into()));
        }
        self.st("insert_subject_keys")
            .insert_subject_keys(&[SubjectKeyRow {
                tenant,
                subject,
                kek_version: active.version(),
                dek_version: dek.version(),
                wrapped_dek: active.wrap_dek(&dek, tenant.as_bytes(), subject.as_bytes())?,
                created_at: now,
            }])
            .await?;
        self.st("create_user")
            .create_user(&row)
            .await
            .map_err(|e| match e {
                boveda_store::Error::Conflict(_) => {
                    Error::Conflict("a user with this email exists".into())
                }
                other => other.into(),
            })?;
        Ok(Invited {
            user: self.user_view(&row).await?,
            invite,
        })
    }

    /// The tenant's staff users (admin).
    ///
    /// # Errors
    /// [`Error::Forbidden`].
    pub async fn users(&self, caller: &Caller) -> Result<Vec<User>, Error> {
        let tenant = Self::admin_of(caller)?;
        let mut out = Vec::new();
        for row in self.st("users").users(tenant).await? {
            out.push(self.user_view(&row).await?);
        }
        Ok(out)
    }

    async fn user_row(&self, tenant: TenantId, id: PrincipalId) -> Result<UserRow, Error> {
        self.st("user")
            .user(tenant, id)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    /// One staff user (admin).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Forbidden`].
    pub async fn user(&self, caller: &Caller, id: PrincipalId) -> Result<User, Error> {
        let tenant = Self::admin_of(caller)?;
        let row = self.user_row(tenant, id).await?;
        self.user_view(&row).await
    }

    /// Applies `change` to a user's state with compare-and-swap, retrying on a concurrent
    /// change; returns the new row and what `change` returned.
    async fn change_user<T>(
        &self,
        tenant: TenantId,
        id: PrincipalId,
        mut change: impl FnMut(&mut UserState) -> Result<T, Error>,
    ) -> Result<(UserRow, T), Error> {
        for _ in 0..8 {
            let row = self.user_row(tenant, id).await?;
            let mut st = state_of(&row)?;
            let out = change(&mut st)?;
            let new = with_state(&row, &st)?;
            if self
                .st("update_user")
                .update_user(&new, row.version)
                .await?
            {
                return Ok((new, out));
            }
        }
        Err(Error::Conflict(
            "the user changed concurrently; retry".into(),
        ))
    }

    /// Changes roles, the must-change flag or the disabled flag (admin). Disabling revokes the
    /// user's sessions.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Forbidden`], [`Error::Invalid`].
    pub async fn update_user(
        &self,
        caller: &Caller,
        id: PrincipalId,
        patch: UserPatch,
    ) -> Result<User, Error> {
        let tenant = Self::admin_of(caller)?;
        if let Some(r) = &patch.roles {
            check_roles(r)?;
        }
        let (row, ()) = self
            .change_user(tenant, id, |st| {
                if let Some(r) = &patch.roles {
                    st.roles = r.clone();
                }
                if let Some(m) = patch.must_change_password {
                    st.must_change = m;
                }
                if let Some(d) = patch.disabled {
                    st.disabled = d;
                }
                Ok(())
            })
            .await?;
        if patch.disabled == Some(true) {
            self.st("revoke_sessions")
                .revoke_sessions(tenant, id)
                .await?;
        }
        self.forget_principals();
        self.user_view(&row).await
    }

    /// Replaces a user's agreements and trainings (admin). Takes effect at once.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Forbidden`].
    pub async fn set_eligibility(
        &self,
        caller: &Caller,
        id: PrincipalId,
        eligibility: Eligibility,
    ) -> Result<User, Error> {
        let tenant = Self::admin_of(caller)?;
        if eligibility.agreements.len() + eligibility.trainings.len() > 200 {
            return Err(Error::invalid("eligibility", "at_most_200_records"));
        }
        let (row, ()) = self
            .change_user(tenant, id, |st| {
                st.eligibility = eligibility.clone();
                Ok(())
            })
            .await?;
        self.forget_principals();
        self.user_view(&row).await
    }

    /// Revokes every session of a user (admin; incident containment calls it too).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Forbidden`].
    pub async fn revoke_user_sessions(
        &self,
        caller: &Caller,
        id: PrincipalId,
    ) -> Result<u64, Error> {
        let tenant = Self::admin_of(caller)?;
        self.user_row(tenant, id).await?;
        let n = self
            .st("revoke_sessions")
            .revoke_sessions(tenant, id)
            .await?;
        self.forget_principals();
        Ok(n)
    }

    async fn invited(&self, invite: &str) -> Result<(TenantId, UserRow, UserState), Error> {
        let bad = || Error::invalid("invite", "invite_valid");
        let (tenant, id) = parse_invite(invite).ok_or_else(bad)?;
        let row = self.st("user").user(tenant, id).await?.ok_or_else(bad)?;
        let st = state_of(&row)?;
        if st.invite_hash.as_deref() != Some(sha_hex(invite).as_str())
            || st.invite_expires_at < now_ms()
        {
            return Err(bad());
        }
        Ok((tenant, row, st))
    }

    /// Sets the invited user's password (checked against the password rules) and starts TOTP
    /// enrolment.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the invite or the password rule that failed.
    pub async fn accept_invite(&self, invite: &str, password: &str) -> Result<Enrollment, Error> {
        let (tenant, row, _) = self.invited(invite).await?;
        let dek = self.user_dek(tenant, row.id).await?;
        let mut sealed = decode_fields(&row.sealed)?;
        let name = Self::open_user(tenant, row.id, &dek, &sealed, "name")?;
        let email = Self::open_user(tenant, row.id, &dek, &sealed, "email")?;
        boveda_policy::password::check(password, name.expose(), email.expose())
            .map_err(|rule| Error::PasswordRule(rule.to_string()))?;
        let phc = self.hash_password(password).await?;
        let secret = boveda_crypto::totp::TotpSecret::generate()?;
        let uri = secret.otpauth_uri("boveda", email.expose());
        Self::seal_user(
            tenant,
            row.id,
            &dek,
            &[("totp", secret.to_base32().as_str())],
            &mut sealed,
        )?;
        let mut st = state_of(&row)?;
        st.password = Some(phc);
        st.password_changed_at = Some(now_ms());
        st.totp_confirmed = false;
        let new = UserRow {
            sealed: encode_fields(&sealed),
            ..with_state(&row, &st)?
        };
        if !self
            .st("update_user")
            .update_user(&new, row.version)
            .await?
        {
            return Err(Error::Conflict(
                "the user changed concurrently; retry".into(),
            ));
        }
        let qr_svg = boveda_policy::qr::svg(&uri).map_err(|_| Error::Internal("qr code"))?;
        // The URI carries the TOTP secret: it goes to the person once, here, and nowhere else.
        Ok(Enrollment {
            otpauth_uri: uri.as_str().to_owned(),
            qr_svg,
        })
    }

    /// Confirms TOTP enrolment with a first code, consumes the invitation and returns ten
    /// recovery codes (shown once, stored hashed).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad invitation or code.
    pub async fn confirm_mfa(&self, invite: &str, code: &str) -> Result<Vec<String>, Error> {
        let (tenant, row, st) = self.invited(invite).await?;
        if st.password.is_none() {
            return Err(Error::invalid("invite", "password_not_set"));
        }
        let step = self
            .totp_step(tenant, &row, code)
            .await?
            .ok_or_else(|| Error::invalid("code", "totp_code"))?;
        let codes = boveda_crypto::totp::recovery_codes(10)?;
        let t = self.cached(tenant).await?;
        let hashes: Vec<String> = codes
            .iter()
            .filter_map(|c| boveda_crypto::totp::normalize_recovery_code(c))
            .map(|c| recovery_hash(&t, &c))
            .collect();
        let mut st = st;
        st.totp_confirmed = true;
        st.last_totp_step = step;
        st.recovery = hashes;
        st.invite_hash = None;
        let new = with_state(&row, &st)?;
        if !self
            .st("update_user")
            .update_user(&new, row.version)
            .await?
        {
            return Err(Error::Conflict(
                "the user changed concurrently; retry".into(),
            ));
        }
        Ok(codes.iter().map(|c| c.as_str().to_owned()).collect())
    }

    /// The time step a TOTP code is valid for now (RFC 6238, ±1 step), if any.
    async fn totp_step(
        &self,
        tenant: TenantId,
        row: &UserRow,
        code: &str,
    ) -> Result<Option<u64>, Error> {
        let dek = self.user_dek(tenant, row.id).await?;
        let sealed = decode_fields(&row.sealed)?;
        let secret = Self::open_user(tenant, row.id, &dek, &sealed, "totp")?;
        let secret = boveda_crypto::totp::TotpSecret::from_base32(secret.expose())
            .map_err(|_| Error::Integrity("totp secret"))?;
        Ok(boveda_crypto::totp::verify(
            &secret,
            code,
            u64::try_from(now_ms() / 1000).unwrap_or(0),
        ))
    }

    async fn hash_password(&self, password: &str) -> Result<String, Error> {
        let pw = zeroize::Zeroizing::new(password.to_owned());
        let params = self.inner.config.password_params;
        tokio::task::spawn_blocking(move || boveda_crypto::password::hash(&pw, &params))
            .await
            .map_err(|_| Error::Internal("password hashing task"))?
            .map_err(|_| Error::Internal("password hashing"))
    }

    async fn verify_password(&self, password: &str, phc: Option<String>) -> Result<bool, Error> {
        let pw = zeroize::Zeroizing::new(password.to_owned());
        // Unknown users are checked against a fixed hash, so they take as long as known ones.
        let phc = phc.unwrap_or_else(|| self.inner.dummy_phc.clone());
        tokio::task::spawn_blocking(move || {
            boveda_crypto::password::verify(&pw, &phc).unwrap_or(false)
        })
        .await
        .map_err(|_| Error::Internal("password hashing task"))
    }

    /// Logs a staff user in with email, password and a TOTP or recovery code. Unknown user,
    /// wrong password, wrong code, disabled and locked accounts all get the same
    /// [`Error::InvalidCredentials`], after the same password work.
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`].
    pub async fn login(
        &self,
        tenant: TenantId,
        email: &str,
        password: &str,
        code: &str,
        request_id: &str,
    ) -> Result<LoginResult, Error> {
        let t = match self.cached(tenant).await {
            Ok(t) => Some(t),
            Err(Error::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let row = match &t {
            Some(t) => {
                self.st("user_by_login")
                    .user_by_login(tenant, &self.login_digest(t, email.trim()))
                    .await?
            }
            None => None,
        };
        let state = row.as_ref().map(state_of).transpose()?;
        let password_ok = self
            .verify_password(password, state.as_ref().and_then(|s| s.password.clone()))
            .await?;
        let login_event = |user: Option<PrincipalId>, outcome: boveda_audit::Outcome| {
            // Unknown users are recorded without what they typed: the email is personal data.
            let principal = user.map_or_else(|| "unknown".to_owned(), |u| u.to_string());
            let mut e = boveda_audit::Event::new(
                *tenant.as_bytes(),
                now_ms(),
                &principal,
                "user",
                "auth.login",
                outcome,
                request_id,
            );
            e.reason = (outcome != boveda_audit::Outcome::Allowed)
                .then(|| "invalid credentials".to_owned());
            e
        };
        let (Some(row), Some(st), Some(t)) = (row, state, t) else {
            if self.cached(tenant).await.is_ok() {
                self.audit(vec![login_event(None, boveda_audit::Outcome::Failed)])
                    .await?;
            }
            return Err(Error::InvalidCredentials);
        };
        let now = now_ms();
        if st.disabled || st.locked_until > now || !st.totp_confirmed {
            self.audit(vec![login_event(
                Some(row.id),
                boveda_audit::Outcome::Failed,
            )])
            .await?;
            return Err(Error::InvalidCredentials);
        }
        let step = if password_ok {
            self.totp_step(tenant, &row, code).await?
        } else {
            None
        };
        let recovery = boveda_crypto::totp::normalize_recovery_code(code)
            .map(|c| recovery_hash(&t, &c))
            .unwrap_or_default();
        let (row, accepted) = self
            .change_user(tenant, row.id, |s| {
                let by_totp = step.is_some_and(|st| st > s.last_totp_step);
                let by_recovery = password_ok && !by_totp && s.recovery.contains(&recovery);
                if (by_totp || by_recovery) && s.locked_until <= now {
                    if let Some(st) = step.filter(|_| by_totp) {
                        s.last_totp_step = st;
                    }
                    if by_recovery {
                        s.recovery.retain(|h| *h != recovery);
                    }
                    s.failed_logins = 0;
                    Ok(true)
                } else {
                    s.failed_logins += 1;
                    if s.failed_logins >= LOCK_AFTER {
                        s.locked_until = now + LOCK_FOR_MS;
                        s.failed_logins = 0;
                    }
                    Ok(false)
                }
            })
            .await?;
        if !accepted {
            metrics::counter!("boveda_login_failures_total").increment(1);
            self.audit(vec![login_event(
                Some(row.id),
                boveda_audit::Outcome::Failed,
            )])
            .await?;
            return Err(Error::InvalidCredentials);
        }
        let mut st = state_of(&row)?;
        // Rehash when the configured parameters changed since the hash was made.
        if let Some(phc) = &st.password
            && boveda_crypto::password::needs_rehash(phc, &self.inner.config.password_params)
        {
            let fresh = self.hash_password(password).await?;
            let (_, ()) = self
                .change_user(tenant, row.id, |s| {
                    s.password = Some(fresh.clone());
                    Ok(())
                })
                .await?;
            st.password = Some(fresh);
        }
        let age_days = st.password_changed_at.map_or(0, |c| (now - c) / DAY_MS);
        let settings = &t.settings;
        let mut expired = false;
        if let Some(max) = settings.password_max_age_days
            && age_days >= i64::from(max)
            && !st.must_change
        {
            expired = true;
            let (_, ()) = self
                .change_user(tenant, row.id, |s| {
                    s.must_change = true;
                    Ok(())
                })
                .await?;
            st.must_change = true;
        }
        let session = token::Token::generate("bvd_ss_")?;
        let cfg = &self.inner.config;
        let srow = SessionRow {
            token_hash: session.hash().to_vec(),
            tenant,
            user: row.id,
            created_at: now,
            last_seen_at: now,
            expires_at: now + cfg.session_lifetime.as_millis() as i64,
            mfa_at: now,
            revoked: false,
        };
        let mut ok_event = login_event(Some(row.id), boveda_audit::Outcome::Allowed);
        ok_event.roles = st.roles.clone();
        ok_event.session = Some(hex::encode(&srow.token_hash[..8]));
        ok_event.mfa_at_ms = Some(now);
        // The tenant's opt-in maximum age forcing a change is recorded with the login.
        ok_event.reason =
            expired.then(|| "password maximum age reached: change required".to_owned());
        self.audit(vec![ok_event]).await?;
        self.st("create_session").create_session(&srow).await?;
        Ok(LoginResult {
            session_token: session.expose().to_owned(),
            expires_at: srow.expires_at,
            password_change_required: st.must_change,
            password_change_recommended: age_days >= i64::from(settings.password_reminder_days),
        })
    }

    /// The principal of a staff session token, if the session is live.
    pub(crate) async fn authenticate_session(&self, bearer: &str) -> Result<Principal, Error> {
        let hash = token::hash(bearer);
        let mut s = self
            .st("session")
            .session(&hash)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let now = now_ms();
        let idle = self.inner.config.session_idle.as_millis() as i64;
        if s.revoked || now >= s.expires_at || now - s.last_seen_at >= idle {
            return Err(Error::Unauthenticated);
        }
        let row = self
            .st("user")
            .user(s.tenant, s.user)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let st = state_of(&row)?;
        if st.disabled {
            return Err(Error::Unauthenticated);
        }
        if now - s.last_seen_at >= LAST_SEEN_GRANULARITY_MS {
            s.last_seen_at = now;
            self.st("update_session").update_session(&s).await?;
        }
        Ok(Principal {
            id: row.id,
            tenant: Some(s.tenant),
            kind: PrincipalKind::Staff,
            name: "staff".into(),
            grants: Grants {
                scopes: Scope::ALL.to_vec(),
                max_view: View::Plain,
                roles: st.roles.clone(),
            },
            staff: Some(StaffSession {
                token_hash: hash.to_vec(),
                mfa_at_ms: s.mfa_at,
                must_change_password: st.must_change,
                agreement_current: st.eligibility.agreement_current(now),
                training_current: st.eligibility.training_current(now),
            }),
        })
    }

    fn staff_session(caller: &Caller) -> Result<(TenantId, &StaffSession), Error> {
        match (&caller.principal.staff, caller.principal.tenant) {
            (Some(s), Some(t)) => Ok((t, s)),
            _ => Err(Error::Forbidden("only staff sessions can do this".into())),
        }
    }

    /// Ends the caller's session.
    ///
    /// # Errors
    /// [`Error::Forbidden`] for a caller that is not a staff session.
    pub async fn logout(&self, caller: &Caller) -> Result<(), Error> {
        let (_, s) = Self::staff_session(caller)?;
        if let Some(mut row) = self.st("session").session(&s.token_hash).await? {
            row.revoked = true;
            self.st("update_session").update_session(&row).await?;
        }
        Ok(())
    }

    /// Re-checks a TOTP code and records the time for step-up conditions.
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`] for a wrong or replayed code.
    pub async fn step_up(&self, caller: &Caller, code: &str) -> Result<i64, Error> {
        let (tenant, s) = Self::staff_session(caller)?;
        let row = self.user_row(tenant, caller.principal.id).await?;
        let step = self.totp_step(tenant, &row, code).await?;
        let (_, ok) = self
            .change_user(tenant, row.id, |st| match step {
                Some(step) if step > st.last_totp_step => {
                    st.last_totp_step = step;
                    Ok(true)
                }
                _ => Ok(false),
            })
            .await?;
        let t = self.cached(tenant).await?;
        let outcome = if ok {
            boveda_audit::Outcome::Allowed
        } else {
            boveda_audit::Outcome::Failed
        };
        self.audit(vec![self.event(
            caller,
            tenant,
            Some(&t),
            "auth.mfa",
            outcome,
        )])
        .await?;
        if !ok {
            return Err(Error::InvalidCredentials);
        }
        let mut session = self
            .st("session")
            .session(&s.token_hash)
            .await?
            .ok_or(Error::Unauthenticated)?;
        session.mfa_at = now_ms();
        self.st("update_session").update_session(&session).await?;
        Ok(session.mfa_at)
    }

    /// Changes the caller's own password (checked against the rules) and clears `must_change`.
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`] for a wrong current password, [`Error::PasswordRule`].
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
    ) -> Result<(), Error> {
        let (tenant, _) = Self::staff_session(caller)?;
        let row = self.user_row(tenant, caller.principal.id).await?;
        let st = state_of(&row)?;
        if !self.verify_password(current, st.password.clone()).await? {
            return Err(Error::InvalidCredentials);
        }
        if current == new {
            return Err(Error::PasswordRule(
                "the new password must differ from the current one".into(),
            ));
        }
        let dek = self.user_dek(tenant, row.id).await?;
        let sealed = decode_fields(&row.sealed)?;
        let name = Self::open_user(tenant, row.id, &dek, &sealed, "name")?;
        let email = Self::open_user(tenant, row.id, &dek, &sealed, "email")?;
        boveda_policy::password::check(new, name.expose(), email.expose())
            .map_err(|rule| Error::PasswordRule(rule.to_string()))?;
        let phc = self.hash_password(new).await?;
        self.change_user(tenant, row.id, |s| {
            s.password = Some(phc.clone());
            s.password_changed_at = Some(now_ms());
            s.must_change = false;
            Ok(())
        })
        .await?;
        self.forget_principals();
        Ok(())
    }

    /// Sets `must_change` and/or `disabled` on a user (incident containment).
    pub(crate) async fn set_user_flags(
        &self,
        tenant: TenantId,
        id: PrincipalId,
        must_change: bool,
        disabled: bool,
    ) -> Result<(), Error> {
        self.change_user(tenant, id, |st| {
            st.must_change |= must_change;
            st.disabled |= disabled;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Disables a user and revokes its sessions (an alert response).
    pub(crate) async fn suspend_user(
        &self,
        tenant: TenantId,
        id: PrincipalId,
    ) -> Result<(), Error> {
        self.change_user(tenant, id, |st| {
            st.disabled = true;
            Ok(())
        })
        .await?;
        self.st("revoke_sessions")
            .revoke_sessions(tenant, id)
            .await?;
        Ok(())
    }

    /// A user's roles and eligibility facts, for `explain`.
    pub(crate) async fn user_facts(
        &self,
        tenant: TenantId,
        id: PrincipalId,
    ) -> Result<(Vec<String>, bool, bool), Error> {
        let row = self.user_row(tenant, id).await?;
        let st = state_of(&row)?;
        let now = now_ms();
        Ok((
            st.roles,
            st.eligibility.agreement_current(now),
            st.eligibility.training_current(now),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligibility_is_current_between_start_and_expiry() {
        let e = Eligibility {
            agreements: vec![Agreement {
                version: "v1".into(),
                signed_at: 100,
                expires_at: Some(200),
            }],
            trainings: vec![Training {
                course: "privacy".into(),
                completed_at: 100,
                expires_at: None,
            }],
        };
        assert!(!e.agreement_current(99));
        assert!(e.agreement_current(100));
        assert!(!e.agreement_current(200), "expired at once");
        assert!(e.training_current(10_000));
    }

    #[test]
    fn invite_tokens_carry_tenant_and_user() {
        let (t, u) = (TenantId::generate(), PrincipalId::generate());
        assert_eq!(
            parse_invite(&format!("bvd_iv_{t}_{u}_secret")),
            Some((t, u))
        );
        assert_eq!(parse_invite("bvd_iv_garbage"), None);
        assert_eq!(parse_invite(&format!("bvd_sa_{t}_{u}_x")), None);
    }
}
