//! [`ManifestSet`]: a complete, consistent set of manifests — every object
//! valid on its own, names unique per kind, at most one Cluster and one
//! Settings, every reference resolved, no dependency loops — with lookups
//! and a dependency order for callers that create objects.
//!
//! Building a set reports ALL problems at once (each located in its file),
//! so an operator fixes a whole directory in one pass. Pure: no I/O.

mod access;
mod order;
mod rules;

use std::borrow::{Borrow, Cow};
use std::ops::Range;

use crate::error::{ManifestError, ManifestErrors};
use crate::kind::Kind;
use crate::manifest::Manifest;
use crate::sourced::Sourced;
use crate::spec::{ClusterSpec, SectorSpec, SettingsSpec, Spec};

/// A validated set of manifests.
#[derive(Debug, Clone, Default)]
pub struct ManifestSet {
    /// Sorted by (kind, name); names unique per kind.
    items: Vec<Sourced<Manifest>>,
    /// The slice of `items` holding each kind, indexed by `Kind::index`.
    ranges: [Range<usize>; Kind::ALL.len()],
    /// Indices into `items`, dependencies first.
    order: Vec<usize>,
}

impl ManifestSet {
    /// Validate `items` as a whole and build the set, or report every
    /// problem: invalid objects, duplicate (kind, name), a second Cluster or
    /// Settings, dangling or ill-typed references, dependency loops.
    pub fn new(items: Vec<Sourced<Manifest>>) -> Result<ManifestSet, ManifestErrors> {
        let mut errors: Vec<ManifestError> = Vec::new();
        for item in &items {
            if let Err(e) = item.validate() {
                errors.extend(e);
            }
        }
        let items = dedupe(items, &mut errors);
        let ranges = kind_ranges(&items);
        let mut set = ManifestSet {
            items,
            ranges,
            order: Vec::new(),
        };
        rules::check(&set, &mut errors);
        match order::dependency_order(&set) {
            Ok(order) => set.order = order,
            Err(loops) => errors.extend(loops),
        }
        ManifestErrors(errors).into_result().map(|()| set)
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The object of `kind` called `name`.
    pub fn get<Q>(&self, kind: Kind, name: &Q) -> Option<&Manifest>
    where
        Q: AsRef<str> + ?Sized,
    {
        self.get_sourced(kind, name).map(|s| &s.value)
    }

    /// The object of `kind` called `name`, with its origin.
    pub fn get_sourced<Q>(&self, kind: Kind, name: &Q) -> Option<&Sourced<Manifest>>
    where
        Q: AsRef<str> + ?Sized,
    {
        self.index_of(kind, name.as_ref()).map(|i| &self.items[i])
    }

    /// Every object, sorted by kind then name.
    pub fn iter(&self) -> impl Iterator<Item = &Manifest> {
        self.items.iter().map(|s| &s.value)
    }

    /// Every object with its origin, sorted by kind then name.
    pub fn iter_sourced(&self) -> impl Iterator<Item = &Sourced<Manifest>> {
        self.items.iter()
    }

    /// The objects of one kind, sorted by name.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Manifest> {
        self.items[self.ranges[kind.index()].clone()]
            .iter()
            .map(|s| &s.value)
    }

    /// Every object, dependencies first: Settings, Cluster, Nodes, Secrets,
    /// SSH keys, Certificates (each issuer before what it signs),
    /// Appliances, Sectors, Lxc. Ties are broken by name, so the order is
    /// stable. (Ingress targets are not dependencies: a Sector comes before
    /// the instances its gateway forwards to.)
    pub fn dependency_order(&self) -> Vec<&Manifest> {
        self.order.iter().map(|&i| &self.items[i].value).collect()
    }

    /// The cluster settings in effect: the Cluster manifest's, or defaults.
    pub fn cluster(&self) -> Cow<'_, ClusterSpec> {
        match self.of_kind(Kind::Cluster).next().map(|m| &m.spec) {
            Some(Spec::Cluster(c)) => Cow::Borrowed(c),
            _ => Cow::Owned(ClusterSpec::default()),
        }
    }

    /// The agent settings in effect: the Settings manifest's, or defaults.
    pub fn settings(&self) -> Cow<'_, SettingsSpec> {
        match self.of_kind(Kind::Settings).next().map(|m| &m.spec) {
            Some(Spec::Settings(s)) => Cow::Borrowed(s),
            _ => Cow::Owned(SettingsSpec::default()),
        }
    }

    /// The spec of the Sector called `name`.
    pub fn sector(&self, name: &str) -> Option<&SectorSpec> {
        match self.get(Kind::Sector, name).map(|m| &m.spec) {
            Some(Spec::Sector(s)) => Some(s),
            _ => None,
        }
    }

    /// The objects with their origins, sorted by kind then name.
    pub fn into_vec(self) -> Vec<Sourced<Manifest>> {
        self.items
    }

    fn index_of(&self, kind: Kind, name: &str) -> Option<usize> {
        let range = self.ranges[kind.index()].clone();
        let start = range.start;
        self.items[range]
            .binary_search_by(|s| Borrow::<str>::borrow(s.value.name()).cmp(name))
            .ok()
            .map(|i| start + i)
    }

    pub(crate) fn items(&self) -> &[Sourced<Manifest>] {
        &self.items
    }
}

/// Sort by (kind, name) keeping input order among equals, drop repeated
/// (kind, name) and extra singletons, reporting each against the first.
fn dedupe(
    mut items: Vec<Sourced<Manifest>>,
    errors: &mut Vec<ManifestError>,
) -> Vec<Sourced<Manifest>> {
    items.sort_by(|a, b| (a.kind(), a.name()).cmp(&(b.kind(), b.name())));
    let mut kept: Vec<Sourced<Manifest>> = Vec::with_capacity(items.len());
    for item in items {
        let Some(prev) = kept.last() else {
            kept.push(item);
            continue;
        };
        let kind = item.kind();
        if prev.kind() == kind && prev.name() == item.name() {
            errors.push(item.error(
                "metadata.name",
                format!(
                    "a {kind} named {} is already defined in {}; names must be unique per kind",
                    item.name(),
                    place(prev)
                ),
            ));
        } else if prev.kind() == kind && kind.is_singleton() {
            errors.push(item.error(
                "kind",
                format!(
                    "only one {kind} manifest may exist, and {} ({}) is already defined; merge the two",
                    prev.name(),
                    place(prev)
                ),
            ));
        } else {
            kept.push(item);
        }
    }
    kept
}

/// `file:line` of an object, for messages that point elsewhere.
pub(crate) fn place(item: &Sourced<Manifest>) -> String {
    let file = if item.source.is_empty() {
        "<command line>"
    } else {
        item.source.as_str()
    };
    match item.line {
        Some(line) => format!("{file}:{line}"),
        None => file.to_owned(),
    }
}

fn kind_ranges(items: &[Sourced<Manifest>]) -> [Range<usize>; Kind::ALL.len()] {
    let mut ranges: [Range<usize>; Kind::ALL.len()] = Default::default();
    let mut start = 0;
    for kind in Kind::ALL {
        let end = start
            + items[start..]
                .iter()
                .take_while(|m| m.kind() == kind)
                .count();
        ranges[kind.index()] = start..end;
        start = end;
    }
    ranges
}
