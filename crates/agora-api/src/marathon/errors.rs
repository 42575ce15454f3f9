//! Marathon's error bodies: `{"message": ...}` and, for validation failures (422),
//! `{"message":"Object is not valid","details":[{"path":"/cpus","errors":["..."]}]}`.

use serde::Serialize;
use serde_json::{Value, json};

/// One invalid field and everything wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub path: String,
    pub errors: Vec<String>,
}

/// Collects problems, merging those of the same path, in the order found.
#[derive(Clone, Debug, Default)]
pub struct Violations(Vec<Violation>);

impl Violations {
    pub fn add(&mut self, path: impl Into<String>, error: impl Into<String>) {
        let path = path.into();
        let error = error.into();
        match self.0.iter_mut().find(|v| v.path == path) {
            Some(violation) => violation.errors.push(error),
            None => self.0.push(Violation {
                path,
                errors: vec![error],
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<Violation> {
        self.0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Violation> {
        self.0.iter()
    }
}

/// The 422 body.
pub fn invalid_body(violations: &[Violation]) -> Value {
    json!({"message": "Object is not valid", "details": violations})
}

/// A plain error body.
pub fn message_body(message: impl Into<String>) -> Value {
    json!({"message": message.into()})
}
