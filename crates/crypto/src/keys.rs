//! The key hierarchy and sealing formats.
//!
//! - Root key (32 bytes) wraps tenant KEKs and tenant index keys.
//! - A tenant KEK, versioned, wraps one DEK per data subject.
//! - A subject DEK seals each field value on its own.
//!
//! Every sealed value starts with a versioned header `[format u8][key version u32 BE][nonce 12]`
//! and is AES-256-GCM with associated data that binds it to its place (tenant, collection,
//! record, field and key version for fields; tenant, kind, owner and version for wrapped keys), so
//! that a ciphertext moved anywhere else fails to open.

use crate::{Error, Pii, SecretKey};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine as _;
use zeroize::Zeroizing;

const FORMAT_FIELD: u8 = 0x01;
const FORMAT_WRAPPED: u8 = 0x02;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;

/// Fills `out` from the operating system's random generator.
///
/// # Errors
/// [`Error::Random`] if the generator fails.
pub fn random_bytes(out: &mut [u8]) -> Result<(), Error> {
    aws_lc_rs::rand::fill(out).map_err(|_| Error::Random)
}

/// SHA-256 of `data`; used for hashing high-entropy API tokens and certificate fingerprints.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn aead_key(key: &SecretKey) -> Result<LessSafeKey, Error> {
    UnboundKey::new(&AES_256_GCM, key.expose())
        .map(LessSafeKey::new)
        .map_err(|_| Error::InvalidKey("aes-256-gcm key"))
}

/// Appends a length-prefixed part to associated data, so that parts cannot be shifted across
/// their boundaries.
fn push_part(aad: &mut Vec<u8>, part: &[u8]) {
    aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
    aad.extend_from_slice(part);
}

fn seal_with(
    key: &LessSafeKey,
    format: u8,
    version: u32,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.push(format);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let mut full_aad = Vec::with_capacity(aad.len() + 5);
    full_aad.push(format);
    full_aad.extend_from_slice(&version.to_be_bytes());
    full_aad.extend_from_slice(aad);
    let mut body = out.split_off(HEADER_LEN);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(full_aad),
        &mut body,
    )
    .map_err(|_| Error::Open)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads the key version from a sealed header without opening it.
fn header(sealed: &[u8], format: u8) -> Result<u32, Error> {
    if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != format {
        return Err(Error::Malformed);
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&sealed[1..5]);
    Ok(u32::from_be_bytes(v))
}

fn open_with(
    key: &LessSafeKey,
    format: u8,
    version: u32,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Pii<Vec<u8>>, Error> {
    let found = header(sealed, format)?;
    if found != version {
        return Err(Error::KeyVersion {
            found,
            expected: version,
        });
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed[5..HEADER_LEN]);
    let mut full_aad = Vec::with_capacity(aad.len() + 5);
    full_aad.push(format);
    full_aad.extend_from_slice(&version.to_be_bytes());
    full_aad.extend_from_slice(aad);
    let mut body = Zeroizing::new(sealed[HEADER_LEN..].to_vec());
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(full_aad),
            &mut body,
        )
        .map_err(|_| Error::Open)?
        .len();
    body.truncate(len);
    Ok(Pii::new(std::mem::take(&mut *body)))
}

/// What a wrapped key is bound to: its kind (`kek`, `dek`, `index`), its tenant and its owner
/// (the subject for a DEK, empty otherwise).
#[derive(Debug, Clone, Copy)]
pub struct WrapAad<'a> {
    /// `kek`, `dek`, `index` or `check`.
    pub kind: &'a str,
    /// Tenant id bytes.
    pub tenant: &'a [u8],
    /// Owner id bytes (the subject of a DEK), or empty.
    pub owner: &'a [u8],
}

impl WrapAad<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut a = Vec::with_capacity(64);
        push_part(&mut a, b"boveda.wrap.v1");
        push_part(&mut a, self.kind.as_bytes());
        push_part(&mut a, self.tenant);
        push_part(&mut a, self.owner);
        a
    }
}

/// What a field ciphertext is bound to.
#[derive(Debug, Clone, Copy)]
pub struct FieldAad<'a> {
    /// Tenant id bytes.
    pub tenant: &'a [u8],
    /// Collection name.
    pub collection: &'a str,
    /// Record id bytes.
    pub record: &'a [u8],
    /// Field name.
    pub field: &'a str,
}

impl FieldAad<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut a = Vec::with_capacity(96);
        push_part(&mut a, b"boveda.field.v1");
        push_part(&mut a, self.tenant);
        push_part(&mut a, self.collection.as_bytes());
        push_part(&mut a, self.record);
        push_part(&mut a, self.field.as_bytes());
        a
    }
}

/// Wraps and unwraps a 32-byte key under `wrapping` (version `version`).
fn wrap(
    wrapping: &LessSafeKey,
    version: u32,
    key: &SecretKey,
    aad: &WrapAad<'_>,
) -> Result<Vec<u8>, Error> {
    seal_with(
        wrapping,
        FORMAT_WRAPPED,
        version,
        &aad.encode(),
        key.expose(),
    )
}

fn unwrap(
    wrapping: &LessSafeKey,
    version: u32,
    wrapped: &[u8],
    aad: &WrapAad<'_>,
) -> Result<SecretKey, Error> {
    let bytes = open_with(wrapping, FORMAT_WRAPPED, version, &aad.encode(), wrapped)?;
    SecretKey::from_slice(bytes.expose())
}

/// The version a wrapped key or sealed field names in its header.
///
/// # Errors
/// [`Error::Malformed`] when the bytes are not a boveda sealed value.
pub fn sealed_version(sealed: &[u8]) -> Result<u32, Error> {
    match sealed.first() {
        Some(&FORMAT_FIELD) => header(sealed, FORMAT_FIELD),
        Some(&FORMAT_WRAPPED) => header(sealed, FORMAT_WRAPPED),
        _ => Err(Error::Malformed),
    }
}

/// The root of the key hierarchy. Never stored beside the data.
pub struct RootKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

/// Argon2id parameters for passphrase-derived root keys: RFC 9106 §4, second recommended
/// option (64 MiB, 3 passes, 4 lanes).
const PASSPHRASE_PARAMS: (u32, u32, u32) = (64 * 1024, 3, 4);

impl RootKey {
    /// The root key from raw key bytes.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the key cannot be used.
    pub fn from_key(key: &SecretKey) -> Result<Self, Error> {
        Ok(Self {
            key: aead_key(key)?,
        })
    }

    /// The root key from its text encoding: base64 of 32 bytes, surrounding whitespace ignored.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the text is not base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| Error::InvalidKey("root key is not base64"))?,
        );
        Self::from_key(&SecretKey::from_slice(&bytes)?)
    }

    /// A fresh root key and its text encoding, to be written to a 0600 key file.
    ///
    /// # Errors
    /// [`Error::Random`] if the generator fails.
    pub fn generate() -> Result<(Self, Zeroizing<String>), Error> {
        let k = SecretKey::generate()?;
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(k.expose()));
        Ok((Self::from_key(&k)?, text))
    }

    /// Derives the root key from a passphrase with Argon2id (RFC 9106) and a stored salt.
    ///
    /// # Errors
    /// [`Error::Derivation`] when the parameters or salt are rejected.
    pub fn from_passphrase(passphrase: &[u8], salt: &[u8]) -> Result<Self, Error> {
        let (m, t, p) = PASSPHRASE_PARAMS;
        let params = argon2::Params::new(m, t, p, Some(32)).map_err(|_| Error::Derivation)?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        argon
            .hash_password_into(passphrase, salt, &mut out)
            .map_err(|_| Error::Derivation)?;
        let key = SecretKey::from_bytes(out);
        zeroize::Zeroize::zeroize(&mut out);
        Self::from_key(&key)
    }

    /// Wraps a tenant key (KEK or index key).
    ///
    /// # Errors
    /// [`Error::Random`] if no nonce could be drawn.
    pub fn wrap(&self, key: &SecretKey, aad: &WrapAad<'_>) -> Result<Vec<u8>, Error> {
        wrap(&self.key, 0, key, aad)
    }

    /// Unwraps a tenant key.
    ///
    /// # Errors
    /// [`Error::Open`] when the key was wrapped by another root key or for another place.
    pub fn unwrap(&self, wrapped: &[u8], aad: &WrapAad<'_>) -> Result<SecretKey, Error> {
        unwrap(&self.key, 0, wrapped, aad)
    }
}

/// A tenant key-encryption key of one version.
pub struct Kek {
    version: u32,
    key: LessSafeKey,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek(v{}, <redacted>)", self.version)
    }
}

impl Kek {
    /// A KEK of `version` from key material.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the key cannot be used.
    pub fn new(version: u32, key: &SecretKey) -> Result<Self, Error> {
        Ok(Self {
            version,
            key: aead_key(key)?,
        })
    }

    /// This KEK's version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Wraps a subject DEK, bound to tenant and subject.
    ///
    /// # Errors
    /// [`Error::Random`] if no nonce could be drawn.
    pub fn wrap_dek(&self, dek: &Dek, tenant: &[u8], subject: &[u8]) -> Result<Vec<u8>, Error> {
        let aad = WrapAad {
            kind: "dek",
            tenant,
            owner: subject,
        };
        let mut aad_bytes = aad.encode();
        aad_bytes.extend_from_slice(&dek.version.to_be_bytes());
        seal_with(
            &self.key,
            FORMAT_WRAPPED,
            self.version,
            &aad_bytes,
            dek.material.expose(),
        )
    }

    /// Unwraps a subject DEK of `dek_version`.
    ///
    /// # Errors
    /// [`Error::KeyVersion`] if it was wrapped by another KEK version, [`Error::Open`] if it was
    /// wrapped for another tenant or subject or modified.
    pub fn unwrap_dek(
        &self,
        wrapped: &[u8],
        dek_version: u32,
        tenant: &[u8],
        subject: &[u8],
    ) -> Result<Dek, Error> {
        let aad = WrapAad {
            kind: "dek",
            tenant,
            owner: subject,
        };
        let mut aad_bytes = aad.encode();
        aad_bytes.extend_from_slice(&dek_version.to_be_bytes());
        let bytes = open_with(&self.key, FORMAT_WRAPPED, self.version, &aad_bytes, wrapped)?;
        Dek::from_key(dek_version, SecretKey::from_slice(bytes.expose())?)
    }
}

/// The KEK version a wrapped DEK names.
///
/// # Errors
/// [`Error::Malformed`] when the bytes are not a wrapped key.
pub fn wrapped_version(wrapped: &[u8]) -> Result<u32, Error> {
    header(wrapped, FORMAT_WRAPPED)
}

/// A data subject's encryption key. Destroying its wrapped form erases the subject's data.
pub struct Dek {
    version: u32,
    material: SecretKey,
    key: LessSafeKey,
}

impl std::fmt::Debug for Dek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dek(v{}, <redacted>)", self.version)
    }
}

impl Dek {
    /// A fresh random DEK of `version`.
    ///
    /// # Errors
    /// [`Error::Random`] if the generator fails.
    pub fn generate(version: u32) -> Result<Self, Error> {
        Self::from_key(version, SecretKey::generate()?)
    }

    /// A DEK from given key material (a key derived for one purpose, such as a tenant's token
    /// key), of `version`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the AEAD key cannot be built.
    pub fn from_key(version: u32, material: SecretKey) -> Result<Self, Error> {
        Ok(Self {
            version,
            key: aead_key(&material)?,
            material,
        })
    }

    /// This DEK's version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Seals one field value, bound to its place and to this DEK's version.
    ///
    /// # Errors
    /// [`Error::Random`] if no nonce could be drawn.
    pub fn seal(&self, plaintext: &[u8], aad: &FieldAad<'_>) -> Result<Vec<u8>, Error> {
        seal_with(
            &self.key,
            FORMAT_FIELD,
            self.version,
            &aad.encode(),
            plaintext,
        )
    }

    /// Opens one field value sealed for exactly this place and key version.
    ///
    /// # Errors
    /// [`Error::Open`] when the bytes were changed or belong to another place,
    /// [`Error::KeyVersion`] when they name another key version, [`Error::Malformed`] when they
    /// are not a sealed field.
    ///
    /// # Security
    /// Returns plaintext: the caller must have authorised and audited the read first.
    pub fn open(&self, sealed: &[u8], aad: &FieldAad<'_>) -> Result<Pii<Vec<u8>>, Error> {
        open_with(&self.key, FORMAT_FIELD, self.version, &aad.encode(), sealed)
    }
}

/// A tenant's blind-index key: HMAC-SHA256 over normalised values, for equality search and
/// counting without decryption.
pub struct IndexKey {
    key: hmac::Key,
}

impl std::fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IndexKey(<redacted>)")
    }
}

/// Length of a blind-index digest: 128 bits keeps collisions negligible for any tenant size.
pub const INDEX_LEN: usize = 16;

impl IndexKey {
    /// An index key from key material.
    pub fn new(key: &SecretKey) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.expose()),
        }
    }

    /// The blind index of a normalised value in one collection field. The collection and field
    /// are part of the input, so equal values in two fields do not share a digest.
    pub fn digest(&self, collection: &str, field: &str, normalised: &[u8]) -> [u8; INDEX_LEN] {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [collection.as_bytes(), field.as_bytes()] {
            ctx.update(&(part.len() as u32).to_be_bytes());
            ctx.update(part);
        }
        ctx.update(normalised);
        let tag = ctx.sign();
        let mut out = [0u8; INDEX_LEN];
        out.copy_from_slice(&tag.as_ref()[..INDEX_LEN]);
        out
    }

    /// Full HMAC-SHA256 tag, for known-answer tests (RFC 4231) and keyed pseudonyms.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.key, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn aad() -> FieldAad<'static> {
        FieldAad {
            tenant: b"tenant-a",
            collection: "customers",
            record: b"rec-1",
            field: "email",
        }
    }

    #[test]
    fn field_round_trip() {
        let dek = Dek::generate(1).unwrap();
        let s = dek.seal(b"ana@example.com", &aad()).unwrap();
        assert_eq!(dek.open(&s, &aad()).unwrap().expose(), b"ana@example.com");
        assert_eq!(sealed_version(&s).unwrap(), 1);
    }

    #[test]
    fn aes_gcm_known_answer() {
        // NIST GCM test vector (gcmEncryptExtIV256, Count 0 with 96-bit IV, empty AAD,
        // 128-bit plaintext): checks that the primitive under our format is AES-256-GCM.
        let key = hex::decode("31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22")
            .unwrap();
        let nonce: [u8; 12] = hex::decode("0d18e06c7c725ac9e362e1ce")
            .unwrap()
            .try_into()
            .unwrap();
        let mut pt = hex::decode("2db5168e932556f8089a0622981d017d").unwrap();
        let k = aead_key(&SecretKey::from_slice(&key).unwrap()).unwrap();
        k.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut pt)
            .unwrap();
        assert_eq!(
            hex::encode(pt),
            "fa4362189661d163fcd6a56d8bf0405ad636ac1bbedd5cc3ee727dc2ab4a9489"
        );
    }

    #[test]
    fn hmac_sha256_rfc4231_case_2() {
        let k = IndexKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"),
        };
        assert_eq!(
            hex::encode(k.mac(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn moved_ciphertext_fails_to_open() {
        let dek = Dek::generate(1).unwrap();
        let s = dek.seal(b"x", &aad()).unwrap();
        let others = [
            FieldAad {
                tenant: b"tenant-b",
                ..aad()
            },
            FieldAad {
                collection: "orders",
                ..aad()
            },
            FieldAad {
                record: b"rec-2",
                ..aad()
            },
            FieldAad {
                field: "phone",
                ..aad()
            },
        ];
        for other in others {
            assert_eq!(dek.open(&s, &other).unwrap_err(), Error::Open);
        }
    }

    #[test]
    fn wrong_key_version_fails() {
        let dek = Dek::generate(1).unwrap();
        let s = dek.seal(b"x", &aad()).unwrap();
        let same_key_v2 = Dek::from_key(2, dek.material.clone()).unwrap();
        assert!(matches!(
            same_key_v2.open(&s, &aad()),
            Err(Error::KeyVersion { .. })
        ));
        let mut relabelled = s.clone();
        relabelled[4] = 2;
        assert_eq!(
            same_key_v2.open(&relabelled, &aad()).unwrap_err(),
            Error::Open
        );
    }

    #[test]
    fn dek_wrap_is_bound_to_tenant_subject_and_kek_version() {
        let kek = Kek::new(3, &SecretKey::generate().unwrap()).unwrap();
        let dek = Dek::generate(1).unwrap();
        let w = kek.wrap_dek(&dek, b"t1", b"s1").unwrap();
        assert_eq!(wrapped_version(&w).unwrap(), 3);
        let back = kek.unwrap_dek(&w, 1, b"t1", b"s1").unwrap();
        let s = dek.seal(b"v", &aad()).unwrap();
        assert_eq!(back.open(&s, &aad()).unwrap().expose(), b"v");
        assert!(kek.unwrap_dek(&w, 1, b"t2", b"s1").is_err());
        assert!(kek.unwrap_dek(&w, 1, b"t1", b"s2").is_err());
        assert!(kek.unwrap_dek(&w, 2, b"t1", b"s1").is_err());
    }

    #[test]
    fn root_key_wrap_and_wrong_root() {
        let (root, text) = RootKey::generate().unwrap();
        let again = RootKey::from_base64(&text).unwrap();
        let k = SecretKey::generate().unwrap();
        let aad = WrapAad {
            kind: "kek",
            tenant: b"t",
            owner: b"",
        };
        let w = root.wrap(&k, &aad).unwrap();
        assert_eq!(again.unwrap(&w, &aad).unwrap().expose(), k.expose());
        let (other, _) = RootKey::generate().unwrap();
        assert_eq!(other.unwrap(&w, &aad).unwrap_err(), Error::Open);
        let idx = WrapAad {
            kind: "index",
            ..aad
        };
        assert_eq!(root.unwrap(&w, &idx).unwrap_err(), Error::Open);
    }

    #[test]
    fn passphrase_derivation_is_deterministic_per_salt() {
        let a =
            RootKey::from_passphrase(b"correct horse battery staple", b"salt-0123456789a").unwrap();
        let b =
            RootKey::from_passphrase(b"correct horse battery staple", b"salt-0123456789a").unwrap();
        let c =
            RootKey::from_passphrase(b"correct horse battery staple", b"salt-0123456789b").unwrap();
        let k = SecretKey::generate().unwrap();
        let aad = WrapAad {
            kind: "kek",
            tenant: b"t",
            owner: b"",
        };
        let w = a.wrap(&k, &aad).unwrap();
        assert!(b.unwrap(&w, &aad).is_ok());
        assert!(c.unwrap(&w, &aad).is_err());
    }

    #[test]
    fn blind_index_separates_fields_and_keys() {
        let k1 = IndexKey::new(&SecretKey::from_bytes([1; 32]));
        let k2 = IndexKey::new(&SecretKey::from_bytes([2; 32]));
        let d = k1.digest("c", "email", b"ana@example.com");
        assert_eq!(d, k1.digest("c", "email", b"ana@example.com"));
        assert_ne!(d, k1.digest("c", "email2", b"ana@example.com"));
        assert_ne!(d, k2.digest("c", "email", b"ana@example.com"));
        // Shifting bytes between collection and field names gives another digest.
        assert_ne!(k1.digest("ab", "c", b"v"), k1.digest("a", "bc", b"v"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_flipped_bit_fails_to_open(pt in proptest::collection::vec(any::<u8>(), 0..64), bit in any::<usize>()) {
            let dek = Dek::generate(1).unwrap();
            let s = dek.seal(&pt, &aad()).unwrap();
            let opened = dek.open(&s, &aad()).unwrap();
            prop_assert_eq!(opened.expose(), &pt);
            let mut bad = s.clone();
            let i = bit % (bad.len() * 8);
            bad[i / 8] ^= 1 << (i % 8);
            prop_assert!(dek.open(&bad, &aad()).is_err());
        }
    }

    #[test]
    fn every_flipped_bit_fails_exhaustively_for_one_value() {
        let dek = Dek::generate(7).unwrap();
        let s = dek.seal(b"+8613812345678", &aad()).unwrap();
        for i in 0..s.len() * 8 {
            let mut bad = s.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(dek.open(&bad, &aad()).is_err(), "bit {i}");
        }
        assert!(dek.open(&s[..s.len() - 1], &aad()).is_err());
    }
}
