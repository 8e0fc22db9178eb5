//! Id newtypes: time-ordered UUIDv7 (index-friendly inserts), never bare strings across a
//! boundary.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh time-ordered id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }
            /// The 16 id bytes, for associated data and storage.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
            /// The id from 16 stored bytes.
            pub fn from_bytes(b: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(b))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id!(
    /// A tenant: the isolation unit.
    TenantId
);
id!(
    /// A data subject: the person the data is about.
    SubjectId
);
id!(
    /// A record of a collection.
    RecordId
);
id!(
    /// A principal: service account, operator, later staff user.
    PrincipalId
);
id!(
    /// An alert raised by behaviour analytics.
    AlertId
);
id!(
    /// A security incident.
    IncidentId
);
