//! The shape [`crate::TransportError`] and [`crate::ProtocolError`] share: a kind, a
//! message saying what was being done, and the underlying error kept as the source.

/// For `struct $name { kind: $kind, message: String, source: Option<BoxedSource> }`:
/// `new`, `with_source`, `kind`, `message`, `Debug`, and `std::error::Error` with the
/// cause as its source. `Display` is each type's own.
macro_rules! kinded_error {
    ($name:ident, $kind:ty) => {
        impl $name {
            /// A failure of `kind`, described by `message` (what was being done).
            pub fn new(kind: $kind, message: impl Into<String>) -> $name {
                $name {
                    kind,
                    message: message.into(),
                    source: None,
                }
            }

            /// The same failure, caused by `source`.
            pub fn with_source(
                mut self,
                source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
            ) -> $name {
                self.source = Some(std::sync::Arc::from(source.into()));
                self
            }

            /// What kind of failure this is.
            pub fn kind(&self) -> $kind {
                self.kind
            }

            /// What was being done, without the cause.
            pub fn message(&self) -> &str {
                &self.message
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("kind", &self.kind)
                    .field("message", &self.message)
                    .field("source", &self.source)
                    .finish()
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.source
                    .as_deref()
                    .map(|e| e as &(dyn std::error::Error + 'static))
            }
        }
    };
}

pub(crate) use kinded_error;
