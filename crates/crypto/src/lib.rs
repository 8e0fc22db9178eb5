//! boveda's cryptography: the key hierarchy (root key → tenant KEK → subject DEK), field sealing
//! with associated data that binds a ciphertext to its place, blind indexes and secret types.
//!
//! This is the only crate that touches cipher implementations (aws-lc-rs and argon2). It never
//! logs and never returns plaintext except through calls whose names say so (`open`, `expose`).
//!
//! ```
//! use boveda_crypto::{Dek, FieldAad};
//! let dek = Dek::generate(1).unwrap();
//! let aad = FieldAad { tenant: b"t", collection: "customers", record: b"r", field: "email" };
//! let sealed = dek.seal(b"ana@example.com", &aad).unwrap();
//! assert_eq!(dek.open(&sealed, &aad).unwrap().expose(), b"ana@example.com");
//! ```

pub mod deid;
mod error;
mod keys;
pub mod password;
mod secret;
pub mod sign;
pub mod token;
pub mod totp;

pub use error::Error;
pub use keys::{
    Dek, FieldAad, INDEX_LEN, IndexKey, Kek, RootKey, WrapAad, random_bytes, sealed_version,
    sha256, wrapped_version,
};
pub use secret::{Pii, SecretKey};
