//! Rules that span objects: every reference resolves to an object of the
//! right kind (and, for subnets, ingress targets and issuers, the right
//! shape); fixed addresses are usable and unique per Sector; Sectors stay
//! clear of the Backplane; pinned instances avoid cordoned nodes; one
//! Appliance per role. Every problem is reported, each located in its file.
//! Pure: no I/O.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::{ManifestSet, place};
use crate::cidr;
use crate::error::ManifestError;
use crate::kind::Kind;
use crate::manifest::Manifest;
use crate::sourced::Sourced;
use crate::spec::pool::MAX_POOL_NAME;
use crate::spec::{CertificateRole, CertificateSpec, LxcSpec, SectorSpec, Spec};

/// How many existing names a "no such object" message lists.
const LIST_NAMES: usize = 5;

pub(super) fn check(set: &ManifestSet, errors: &mut Vec<ManifestError>) {
    let backplane = set.cluster().backplane.cidr;
    let mut addresses: HashMap<(&str, Ipv4Addr), &Sourced<Manifest>> = HashMap::new();
    let mut roles = HashMap::new();
    for item in set.items() {
        super::access::check(set, item, errors);
        for r in item.references() {
            if set.get(r.kind, r.name).is_none() {
                errors.push(item.error(&r.field, missing(set, r.kind, r.name.as_str())));
            }
        }
        match &item.spec {
            Spec::Lxc(lxc) => {
                check_lxc(set, item, "spec", lxc, &mut addresses, errors);
                check_member_name(set, item, errors);
            }
            Spec::Pool(pool) => {
                check_lxc(
                    set,
                    item,
                    "spec.instance",
                    &pool.instance,
                    &mut addresses,
                    errors,
                );
                // The pool's name is a DNS name of its Sector: it may not
                // be a host's there.
                let taken = match item.name().as_str() {
                    "dns" | "router" => Some("a name of the Sector's own appliances".to_owned()),
                    name => match set.get_sourced(Kind::Lxc, name) {
                        Some(lxc) if matches!(&lxc.spec, Spec::Lxc(l) if l.sector == pool.instance.sector) => {
                            Some(format!(
                                "the name of Lxc {name} ({}) in the same Sector",
                                place(lxc)
                            ))
                        }
                        _ => None,
                    },
                };
                if let Some(why) = taken {
                    errors.push(item.error(
                        "metadata.name",
                        format!(
                            "the Pool answers in DNS as {}.{}.orbitlab.internal, which is {why}; choose another name",
                            item.name(),
                            pool.instance.sector
                        ),
                    ));
                }
                if item.name().as_str().len() > MAX_POOL_NAME {
                    errors.push(item.error(
                        "metadata.name",
                        format!(
                            "a Pool's name is at most {MAX_POOL_NAME} characters (its members are named <pool>-<n>); shorten it"
                        ),
                    ));
                }
            }
            Spec::Sector(sector) => {
                if cidr::overlaps(&sector.cidr, &backplane) {
                    errors.push(item.error(
                        "spec.cidr",
                        format!(
                            "{} overlaps the Backplane network {backplane}; a Sector Gateway joins both and cannot route between overlapping ranges; choose another range",
                            sector.cidr
                        ),
                    ));
                }
                check_ingress(set, item, sector, errors);
            }
            Spec::Certificate(cert) => check_issuer(set, item, cert, errors),
            Spec::Appliance(a) => {
                if let Some(first) = roles.insert(a.role, item) {
                    roles.insert(a.role, first);
                    errors.push(item.error(
                        "spec.role",
                        format!(
                            "Appliance {} ({}) already serves role {}; keep one Appliance per role",
                            first.name(),
                            place(first),
                            a.role.as_str()
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// "no Sector named "web" exists; ..." with a few existing names.
fn missing(set: &ManifestSet, kind: Kind, name: &str) -> String {
    let names: Vec<&str> = set
        .of_kind(kind)
        .take(LIST_NAMES + 1)
        .map(|m| m.name().as_str())
        .collect();
    let known = match names.len() {
        0 => format!("there are no {kind} objects yet"),
        n if n > LIST_NAMES => format!("existing: {}, ...", names[..LIST_NAMES].join(", ")),
        _ => format!("existing: {}", names.join(", ")),
    };
    format!("no {kind} named \"{name}\" exists ({known}); create it or correct the name")
}

fn check_lxc<'a>(
    set: &'a ManifestSet,
    item: &'a Sourced<Manifest>,
    at: &str,
    lxc: &'a LxcSpec,
    addresses: &mut HashMap<(&'a str, Ipv4Addr), &'a Sourced<Manifest>>,
    errors: &mut Vec<ManifestError>,
) {
    if let Some(node) = &lxc.node {
        // Node manifests are named in lower case; Proxmox node names may not be.
        let settings = set.get(Kind::Node, node.as_str().to_ascii_lowercase().as_str());
        if let Some(Spec::Node(n)) = settings.map(|m| &m.spec)
            && !n.schedulable
        {
            errors.push(item.error(
                format!("{at}.node"),
                format!("node {node} is marked schedulable: false; pin the instance to another node or remove node"),
            ));
        }
    }
    let Some(sector) = set.sector(lxc.sector.as_str()) else {
        return; // reported as a dangling reference
    };
    let subnet = match &lxc.subnet {
        Some(name) => match sector.subnet(name.as_str()) {
            Some(s) => Some(s),
            None => {
                errors.push(item.error(
                    format!("{at}.subnet"),
                    format!(
                        "Sector {} has no subnet \"{name}\"; its subnets are {}",
                        lxc.sector,
                        subnet_names(sector)
                    ),
                ));
                return;
            }
        },
        None => sector.effective_subnets().first().cloned(),
    };
    if let Some(addr) = lxc.address {
        if let Some(why) = sector.address_problem(addr, subnet.as_ref()) {
            errors.push(item.error(format!("{at}.address"), why));
        } else if let Some(first) = addresses.insert((lxc.sector.as_str(), addr), item) {
            addresses.insert((lxc.sector.as_str(), addr), first);
            errors.push(item.error(
                format!("{at}.address"),
                format!(
                    "{addr} is already the address of Lxc {} ({}) in Sector {}; give each instance its own address",
                    first.name(),
                    place(first),
                    lxc.sector
                ),
            ));
        }
    }
}

/// Refuses an Lxc whose name is one a Pool gives its members
/// (`<pool>-<n>`): the two would fight over one container.
fn check_member_name(set: &ManifestSet, item: &Sourced<Manifest>, errors: &mut Vec<ManifestError>) {
    let name = item.name().as_str();
    let Some((pool, n)) = name.rsplit_once('-') else {
        return;
    };
    if !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && let Some(p) = set.get_sourced(Kind::Pool, pool)
    {
        errors.push(item.error(
            "metadata.name",
            format!(
                "{name} is the name of a member of Pool {pool} ({}); choose another name",
                place(p)
            ),
        ));
    }
}

fn subnet_names(sector: &SectorSpec) -> String {
    sector
        .effective_subnets()
        .iter()
        .map(|s| format!("{} ({})", s.name, s.cidr))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_ingress(
    set: &ManifestSet,
    item: &Sourced<Manifest>,
    sector: &SectorSpec,
    errors: &mut Vec<ManifestError>,
) {
    for (i, rule) in sector.ingress.iter().enumerate() {
        let Some(target) = &rule.to_instance else {
            continue;
        };
        if let Some(Spec::Lxc(lxc)) = set.get(Kind::Lxc, target).map(|m| &m.spec)
            && lxc.sector != *item.name()
        {
            errors.push(item.error(
                format!("spec.ingress[{i}].to_instance"),
                format!(
                    "Lxc {target} is in Sector {}, not in {}; ingress reaches only instances of its own Sector",
                    lxc.sector,
                    item.name()
                ),
            ));
        }
    }
}

fn check_issuer(
    set: &ManifestSet,
    item: &Sourced<Manifest>,
    cert: &CertificateSpec,
    errors: &mut Vec<ManifestError>,
) {
    let Some(issuer_name) = &cert.issuer else {
        return;
    };
    let Some(Spec::Certificate(issuer)) = set.get(Kind::Certificate, issuer_name).map(|m| &m.spec)
    else {
        return; // reported as a dangling reference
    };
    if !issuer.role.is_ca() {
        errors.push(item.error(
            "spec.issuer",
            format!(
                "Certificate {issuer_name} is a {} certificate and cannot sign others; name a root_ca or intermediate_ca",
                issuer.role.as_str()
            ),
        ));
        return;
    }
    if !issuer.permitted_dns_domains.is_empty() {
        let names = cert.dns_names.iter().map(|d| ("dns_names", d)).chain(
            cert.permitted_dns_domains
                .iter()
                .map(|d| ("permitted_dns_domains", d)),
        );
        let mut counts = [0usize; 2];
        for (list, dns) in names {
            let index = usize::from(list != "dns_names");
            let i = counts[index];
            counts[index] += 1;
            let bare = dns.as_str().strip_prefix("*.").unwrap_or(dns.as_str());
            let allowed = issuer.permitted_dns_domains.iter().any(|p| {
                bare == p.as_str()
                    || bare
                        .strip_suffix(p.as_str())
                        .is_some_and(|head| head.ends_with('.'))
            });
            if !allowed {
                let domains: Vec<&str> = issuer
                    .permitted_dns_domains
                    .iter()
                    .map(|d| d.as_str())
                    .collect();
                errors.push(item.error(
                    format!("spec.{list}[{i}]"),
                    format!(
                        "{dns} is outside the domains Certificate {issuer_name} may issue for ({}); clients would reject it",
                        domains.join(", ")
                    ),
                ));
            }
        }
    }
    if cert.role == CertificateRole::IntermediateCa
        && let Some(limit) = issuer.path_len
    {
        let problem = match cert.path_len {
            _ if limit == 0 => Some((
                "spec.issuer",
                format!(
                    "Certificate {issuer_name} has path_len 0 and may sign only server and client certificates"
                ),
            )),
            Some(own) if own >= limit => Some((
                "spec.path_len",
                format!("is {own}; it must be below the issuer's path_len {limit}"),
            )),
            _ => None,
        };
        if let Some((field, why)) = problem {
            errors.push(item.error(field, why));
        }
    }
}
