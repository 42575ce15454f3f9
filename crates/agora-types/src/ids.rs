//! Identifier newtypes, so a task id can never be passed where an agent id is expected.

use std::fmt;
use std::sync::Arc;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Copied once into the id's shared string (a `String` given whole is copied too).
            pub fn new(value: impl AsRef<str>) -> Self {
                Self(Arc::from(value.as_ref()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(Arc::from(value))
            }
        }
    };
}

id_type!(
    /// A framework (scheduler) id, `<master-id>-<nnnn>` when the master assigns it.
    FrameworkId
);
id_type!(
    /// An agent id, `<master-id>-S<n>`.
    AgentId
);
id_type!(
    /// An offer id, `<master-id>-O<n>`.
    OfferId
);
id_type!(
    /// A task id, chosen by the framework.
    TaskId
);
id_type!(
    /// An executor id, chosen by the framework (equals the task id for command tasks).
    ExecutorId
);
