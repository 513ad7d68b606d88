//! [`ObjectRef`]: how plans, steps, reports and statuses name an object.

use std::fmt;

use orbitlab_manifests::{Kind, Name};

/// An object: its kind and its (validated) name. Prints as the API path
/// segment pair `sector/web`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: Kind,
    pub name: Name,
}

impl ObjectRef {
    pub fn new(kind: Kind, name: &Name) -> Self {
        ObjectRef {
            kind,
            name: name.clone(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.dir_name(), self.name)
    }
}
