//! Rendering what goes into a Sector's running gateway and DNS containers,
//! and deciding whether it must be pushed (its digest differs from the one
//! recorded after the last push). Each goes in as one bundle that the
//! helper inside the appliance checks, switches to and loads
//! ([`crate::host::bundle`]).
//!
//! The Sector DNS forwards names outside its Sector to upstream resolvers
//! ([`choose_upstreams`]): the Cluster manifest's
//! `spec.defaults.dns_upstreams` when it lists any, else the name servers
//! of the node the DNS container runs on, less those it cannot reach
//! (loopback such as systemd-resolved's `127.0.0.53`, IPv6, link-local,
//! the Backplane network, the Sector's own subnets). Its queries leave the
//! Sector only through the Sector Gateway: the container's one interface
//! is on the Sector's first subnet with the gateway (`.1`) as its default
//! route, and the gateway masquerades them out of its Backplane side.
//! With no usable upstream the DNS is still configured (the Sector's own
//! names resolve) and the Sector is blocked with the reason and the fix.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use orbitlab_manifests::spec::cluster::UnusableUpstream;
use orbitlab_manifests::{
    ApplianceRole, Kind, Name, NodeName, Protocol as SpecProtocol, SectorSpec,
};
use sha2::{Digest, Sha256};

use super::subnet_pool;
use crate::ipam::role_address;
use crate::pve::Vmid;
use crate::reconcile::ObjectRef;
use crate::reconcile::action::{Action, ConfigurePlan, FileToPush};
use crate::reconcile::controllers::cluster::Backplane;
use crate::reconcile::controllers::part;
use crate::reconcile::ids::{self, SectorTag};
use crate::reconcile::plan::Planner;
use crate::render::{
    self, DnsConfig, DnsLabel, DnsSpec, GatewayConfig, GatewaySpec, GatewaySubnet, Ingress,
    Protocol, RenderedFile, Targets,
};

impl Planner<'_> {
    /// Configuration steps for the Sector's two containers, once both run
    /// and every address they need is allocated; none before that (a later
    /// pass plans them). `Err` when the configuration cannot be rendered:
    /// the Sector is blocked with the reason, never silently left waiting.
    /// A Sector DNS without a usable upstream resolver is configured and
    /// blocks the Sector; one whose node's resolvers are not known this
    /// pass is left as it is and the Sector waits ([`Upstreams`]).
    pub(super) fn configure_sector(
        &mut self,
        name: &Name,
        spec: &SectorSpec,
        tag: SectorTag,
        bp: &Backplane,
    ) -> Result<Vec<Action>, String> {
        let object = ObjectRef::new(Kind::Sector, name);
        let gateway = part(&object, ApplianceRole::Gateway);
        let dns = part(&object, ApplianceRole::Dns);
        let running = |marker| self.observed.container(marker).filter(|(_, c)| c.running);
        let (Some((gw_vmid, gw)), Some((dns_vmid, dns_c)), Some(backplane_address)) = (
            running(&gateway),
            running(&dns),
            self.observed.address(&gateway.owner(), &bp.pool().id),
        ) else {
            return Ok(Vec::new());
        };
        let subnets = spec.effective_subnets();
        let first = subnets
            .first()
            .ok_or("a Sector needs at least one subnet")?
            .cidr;
        let label = |text: &str| {
            text.parse::<DnsLabel>()
                .map_err(|e| format!("cannot configure the Sector's DNS: {e}"))
        };
        let sector_label = label(name.as_ref())?;
        let ingress = spec
            .ingress
            .iter()
            .filter_map(|rule| {
                let to = match (&rule.to_address, &rule.to_instance, &rule.to_selector) {
                    (Some(addr), _, _) => Targets::one(*addr),
                    (None, Some(instance), _) => {
                        // A missing target blocks the Sector (see
                        // `ingress_without_target`); the other rules are pushed.
                        Targets::one(self.instance_address(name, spec, instance.as_ref())?)
                    }
                    // Only what serves now; none: the rule is left out
                    // until something does (see `ingress_without_target`).
                    (None, None, Some(selector)) => {
                        Targets::new(self.selected(name, spec, selector).serving)?
                    }
                    (None, None, None) => return None,
                };
                Some(label(rule.name.as_ref()).map(|name| Ingress {
                    name,
                    protocol: match rule.protocol {
                        SpecProtocol::Tcp => Protocol::Tcp,
                        SpecProtocol::Udp => Protocol::Udp,
                    },
                    port: rule.port,
                    to,
                    to_port: rule.target_port(),
                }))
            })
            .collect::<Result<Vec<_>, String>>()?;

        let gateway_config = GatewayConfig::new(GatewaySpec {
            sector: sector_label.clone(),
            hostname: label(&ids::appliance_hostname(ApplianceRole::Gateway, tag))?,
            subnets: subnets
                .iter()
                .map(|s| GatewaySubnet {
                    cidr: s.cidr,
                    gateway: role_address(s.cidr, ApplianceRole::Gateway),
                })
                .collect(),
            backplane_address: Ipv4Net::new(backplane_address, bp.cidr.prefix_len())
                .map_err(|e| format!("the Backplane prefix is invalid: {e}"))?,
            backplane_gateway: bp.gateway,
            ingress,
        })
        .map_err(|e| format!("cannot render the Sector Gateway's configuration: {e}"))?;

        let mut records: BTreeMap<DnsLabel, Ipv4Addr> = BTreeMap::new();
        records.insert(
            label("router")?,
            role_address(first, ApplianceRole::Gateway),
        );
        records.insert(label("dns")?, role_address(first, ApplianceRole::Dns));
        for (instance, addr) in self.instance_addresses(name, spec) {
            records.insert(label(&instance)?, addr);
        }
        let mut groups: BTreeMap<DnsLabel, BTreeSet<Ipv4Addr>> = BTreeMap::new();
        for (pool, healthy) in super::super::pool::dns_groups(self.desired, self.observed, name) {
            if !healthy.is_empty() {
                groups.insert(label(pool.as_str())?, healthy);
            }
        }
        let cluster_upstreams = self
            .desired
            .cluster
            .as_ref()
            .map_or(&[][..], |(_, c)| &c.defaults.dns_upstreams[..]);
        let upstreams = choose_upstreams(
            cluster_upstreams,
            &dns_c.node,
            self.observed
                .node_resolvers
                .get(&dns_c.node)
                .map(Vec::as_slice),
            &bp.cidr,
            &subnets.iter().map(|s| s.cidr).collect::<Vec<_>>(),
        );
        let dns_files = match upstreams.addresses() {
            Some(upstreams) => {
                let config = DnsConfig::new(DnsSpec {
                    sector: sector_label,
                    listen: role_address(first, ApplianceRole::Dns),
                    upstreams,
                    records,
                    groups,
                })
                .map_err(|e| format!("cannot render the Sector DNS's configuration: {e}"))?;
                Some(render::dns_files(&config))
            }
            None => None,
        };
        match upstreams {
            Upstreams::Usable(_) => {}
            Upstreams::NoneUsable(reason) => self.block(object.clone(), reason),
            Upstreams::Unknown(reason) => self.wait(object.clone(), reason),
        }

        let mut steps = Vec::new();
        let gateway_files = render::gateway_files(&gateway_config);
        let dns_part = dns_files.map(|files| (dns, dns_vmid, &dns_c.node, files));
        let gateway_part = Some((gateway, gw_vmid, &gw.node, gateway_files));
        for (marker, vmid, node, files) in gateway_part.into_iter().chain(dns_part) {
            let digest = digest(vmid, &files);
            if self.observed.pushed.get(&vmid) != Some(&digest) {
                steps.push(Action::Configure(Box::new(ConfigurePlan {
                    marker,
                    vmid,
                    node: node.clone(),
                    files: files
                        .into_iter()
                        .map(|f| FileToPush {
                            path: f.path.to_owned(),
                            mode: f.mode,
                            content: f.content,
                        })
                        .collect(),
                    digest,
                })));
            }
        }
        Ok(steps)
    }

    /// Addresses IPAM gave instances (`lxc/<name>`) in this Sector's subnets.
    fn instance_addresses(&self, sector: &Name, spec: &SectorSpec) -> Vec<(String, Ipv4Addr)> {
        let pools: Vec<_> = spec
            .effective_subnets()
            .iter()
            .filter_map(|s| subnet_pool(sector, s.cidr).ok())
            .map(|pool| pool.id)
            .collect();
        self.observed
            .addresses
            .iter()
            .filter_map(|(owner, by_pool)| {
                let instance = owner.as_str().strip_prefix("lxc/")?;
                let addr = pools.iter().find_map(|p| by_pool.get(p))?;
                Some((instance.to_owned(), *addr))
            })
            .collect()
    }

    /// What an ingress selector picks in `sector`: the instances
    /// declared there whose labels match (a Pool's members carry its
    /// labels), and the addresses of those serving now — running, and for
    /// a Pool's member, healthy.
    pub(super) fn selected(
        &self,
        sector: &Name,
        spec: &SectorSpec,
        selector: &orbitlab_manifests::Selector,
    ) -> Selected {
        let healthy: BTreeSet<Ipv4Addr> =
            super::super::pool::dns_groups(self.desired, self.observed, sector)
                .into_values()
                .flatten()
                .collect();
        let addresses: BTreeMap<String, Ipv4Addr> =
            self.instance_addresses(sector, spec).into_iter().collect();
        let mut out = Selected::default();
        for (instance, lxc) in &self.desired.instances {
            let labels = self
                .desired
                .labels
                .get(instance)
                .cloned()
                .unwrap_or_default();
            if lxc.sector != *sector || !selector.matches(&labels) {
                continue;
            }
            out.declared += 1;
            let Some(addr) = addresses.get(instance.as_str()) else {
                continue;
            };
            let serving = if self.desired.members.contains_key(instance) {
                healthy.contains(addr)
            } else {
                let marker = crate::reconcile::ids::Marker::object(Kind::Lxc, instance);
                self.observed
                    .container(&marker)
                    .is_some_and(|(_, c)| c.running)
            };
            if serving {
                out.serving.push(*addr);
            }
        }
        out
    }

    /// Why a declared ingress rule cannot forward: the first rule whose
    /// target instance has no address in this Sector (it does not exist,
    /// or has not been given one yet), or whose selector matches no
    /// instance or Pool member of the Sector; `None` when every rule has
    /// a target.
    pub(super) fn ingress_without_target(
        &self,
        sector: &Name,
        spec: &SectorSpec,
    ) -> Option<String> {
        spec.ingress.iter().find_map(|rule| {
            if let Some(selector) = &rule.to_selector {
                let selected = self.selected(sector, spec, selector);
                return (selected.declared == 0).then(|| format!(
                    "ingress rule {}: selector {selector} matches no instance or Pool member of Sector {sector}, so the rule forwards nowhere; label the instances or Pools it should reach, or change the selector",
                    rule.name
                ));
            }
            let instance = rule.to_instance.as_ref()?;
            if self
                .instance_address(sector, spec, instance.as_ref())
                .is_none()
            {
                return Some(format!(
                    "ingress rule {}: instance {instance} has no address in Sector {sector}, so the rule forwards nowhere; create the instance in this Sector, or point the rule at an address with to_address",
                    rule.name
                ));
            }
            let marker = crate::reconcile::ids::Marker::object(Kind::Lxc, instance);
            let running = self.observed.container(&marker).is_some_and(|(_, c)| c.running);
            (!running).then(|| {
                format!(
                    "ingress rule {}: instance {instance} is not running, so the rule forwards to nothing",
                    rule.name
                )
            })
        })
    }

    /// Why a selector's ingress rule waits: it matches instances of the
    /// Sector, none of which serves yet (being made, started or checked);
    /// the rule is pushed once one does.
    pub(super) fn ingress_waiting(&self, sector: &Name, spec: &SectorSpec) -> Option<String> {
        spec.ingress.iter().find_map(|rule| {
            let selector = rule.to_selector.as_ref()?;
            let selected = self.selected(sector, spec, selector);
            (selected.declared > 0 && selected.serving.is_empty()).then(|| {
                format!(
                    "ingress rule {}: waiting for one of the {} instances selector {selector} matches to run (and, for a Pool's member, pass its health check)",
                    rule.name, selected.declared
                )
            })
        })
    }

    fn instance_address(
        &self,
        sector: &Name,
        spec: &SectorSpec,
        instance: &str,
    ) -> Option<Ipv4Addr> {
        self.instance_addresses(sector, spec)
            .into_iter()
            .find(|(n, _)| n == instance)
            .map(|(_, a)| a)
    }
}

/// What an ingress selector picks (see [`Planner::selected`]).
#[derive(Debug, Default)]
pub(super) struct Selected {
    /// Instances of the Sector whose labels match.
    pub declared: usize,
    /// The addresses of those serving now.
    pub serving: Vec<Ipv4Addr>,
}

/// Where a Sector DNS forwards names outside its Sector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Upstreams {
    /// These resolvers, in order of preference (at least one).
    Usable(Vec<Ipv4Addr>),
    /// None is usable: the DNS is configured without upstreams (the
    /// Sector's own names still resolve) and the Sector is blocked with
    /// this reason.
    NoneUsable(String),
    /// The resolvers of the DNS container's node are not known this pass:
    /// its configuration is left as it is and the Sector waits with this
    /// reason.
    Unknown(String),
}

impl Upstreams {
    /// The addresses to render: `None` when they are not known.
    fn addresses(&self) -> Option<Vec<Ipv4Addr>> {
        match self {
            Upstreams::Usable(addrs) => Some(addrs.clone()),
            Upstreams::NoneUsable(_) => Some(Vec::new()),
            Upstreams::Unknown(_) => None,
        }
    }
}

/// The upstream resolvers of a Sector DNS running on `node`: `cluster`
/// (the Cluster manifest's `spec.defaults.dns_upstreams`) when it lists
/// any, else `node_resolvers` (that node's name servers; `None`: not
/// read). Only addresses the DNS container reaches through its Sector
/// Gateway are kept: IPv4, unicast, not loopback or link-local, outside
/// the Backplane network (`backplane`) and the Sector's `subnets`; each
/// once, in order. Pure.
pub(crate) fn choose_upstreams(
    cluster: &[Ipv4Addr],
    node: &NodeName,
    node_resolvers: Option<&[String]>,
    backplane: &Ipv4Net,
    subnets: &[Ipv4Net],
) -> Upstreams {
    let from_cluster = !cluster.is_empty();
    let entries: Vec<String> = if from_cluster {
        cluster.iter().map(Ipv4Addr::to_string).collect()
    } else {
        match node_resolvers {
            Some(servers) => servers.to_vec(),
            None => {
                return Upstreams::Unknown(format!(
                    "waiting for the DNS settings of node {node}, where the Sector DNS runs (GET /nodes/{node}/dns has not answered): its upstream resolvers are that node's, since the Cluster manifest sets no spec.defaults.dns_upstreams"
                ));
            }
        }
    };
    let mut usable: Vec<Ipv4Addr> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for entry in &entries {
        match reachable_upstream(entry, backplane, subnets) {
            Ok(addr) if !usable.contains(&addr) => usable.push(addr),
            Ok(_) => {}
            Err(why) => skipped.push(format!("{entry} is {why}")),
        }
    }
    if !usable.is_empty() {
        return Upstreams::Usable(usable);
    }
    let head =
        "the Sector DNS has no upstream resolver, so names outside the Sector do not resolve";
    Upstreams::NoneUsable(match (from_cluster, entries.is_empty()) {
        (true, _) => format!(
            "{head}: no address in spec.defaults.dns_upstreams of the Cluster manifest can be reached from this Sector ({}); list resolvers outside this Sector there",
            skipped.join("; ")
        ),
        (false, true) => format!(
            "{head}: node {node}, where it runs, has no name server in its DNS settings; set spec.defaults.dns_upstreams in the Cluster manifest, or give node {node} a name server (System → DNS)"
        ),
        (false, false) => format!(
            "{head}: none of the name servers of node {node}, where it runs, can be reached from the Sector ({}); set spec.defaults.dns_upstreams in the Cluster manifest, or give node {node} a name server other hosts can reach (System → DNS)",
            skipped.join("; ")
        ),
    })
}

/// `entry` as an upstream the Sector DNS container can reach, or why not.
fn reachable_upstream(
    entry: &str,
    backplane: &Ipv4Net,
    subnets: &[Ipv4Net],
) -> Result<Ipv4Addr, String> {
    let addr = match entry.parse::<IpAddr>() {
        Ok(IpAddr::V4(addr)) => addr,
        Ok(IpAddr::V6(addr)) if addr.is_loopback() => {
            return Err(
                "the IPv6 loopback address, the node's own and out of the container's reach".into(),
            );
        }
        Ok(IpAddr::V6(_)) => return Err("an IPv6 address, and Sectors are IPv4 only".into()),
        Err(_) => return Err("not an IP address".into()),
    };
    if let Some(why) = UnusableUpstream::of(addr, backplane) {
        return Err(why.to_string());
    }
    if let Some(net) = subnets.iter().find(|net| net.contains(&addr)) {
        return Err(format!(
            "inside this Sector's subnet {net}, so its queries would never leave the Sector"
        ));
    }
    Ok(addr)
}

/// SHA-256 over the VMID and every file (path, mode, content).
fn digest(vmid: Vmid, files: &[RenderedFile]) -> String {
    let mut hash = Sha256::new();
    hash.update(vmid.get().to_be_bytes());
    for f in files {
        for part in [
            f.path.as_bytes(),
            &f.mode.to_be_bytes(),
            f.content.as_bytes(),
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(cluster: &[&str], node: Option<&[&str]>) -> Upstreams {
        let cluster: Vec<Ipv4Addr> = cluster.iter().map(|a| a.parse().unwrap()).collect();
        let node: Option<Vec<String>> = node.map(|n| n.iter().map(|s| (*s).to_owned()).collect());
        choose_upstreams(
            &cluster,
            &"pve2".parse().unwrap(),
            node.as_deref(),
            &"10.200.0.0/16".parse().unwrap(),
            &[
                "172.16.0.0/24".parse().unwrap(),
                "172.16.1.0/24".parse().unwrap(),
            ],
        )
    }

    fn addrs(list: &[&str]) -> Upstreams {
        Upstreams::Usable(list.iter().map(|a| a.parse().unwrap()).collect())
    }

    #[test]
    fn cluster_upstreams_come_first_and_the_node_is_not_needed() {
        assert_eq!(
            choose(&["192.0.2.53", "9.9.9.9"], None),
            addrs(&["192.0.2.53", "9.9.9.9"])
        );
        assert_eq!(
            choose(&["9.9.9.9"], Some(&["192.168.1.1"])),
            addrs(&["9.9.9.9"])
        );
    }

    #[test]
    fn node_resolvers_keep_only_what_the_sector_reaches_each_once() {
        assert_eq!(
            choose(
                &[],
                Some(&[
                    "127.0.0.53",
                    "192.168.1.1",
                    "fe80::1",
                    "192.168.1.1",
                    "10.200.0.1",
                    "172.16.1.53",
                    "169.254.169.253",
                    "resolver.lan",
                    "1.1.1.1",
                ])
            ),
            addrs(&["192.168.1.1", "1.1.1.1"])
        );
    }

    #[test]
    fn unread_node_resolvers_leave_the_dns_as_it_is() {
        let Upstreams::Unknown(reason) = choose(&[], None) else {
            panic!("unknown");
        };
        assert!(reason.contains("node pve2"), "{reason}");
        assert_eq!(Upstreams::Unknown(reason).addresses(), None);
    }

    #[test]
    fn nothing_usable_says_why_and_what_to_do() {
        let Upstreams::NoneUsable(reason) = choose(&[], Some(&["127.0.0.53", "10.200.0.1"])) else {
            panic!("none usable");
        };
        assert!(
            reason.contains("127.0.0.53 is a loopback address")
                && reason.contains("10.200.0.1 is inside the Backplane network 10.200.0.0/16")
                && reason.contains("set spec.defaults.dns_upstreams in the Cluster manifest"),
            "{reason}"
        );
        assert_eq!(Upstreams::NoneUsable(reason).addresses(), Some(Vec::new()));
        // Cluster upstreams inside this Sector cannot be reached through
        // its gateway either (they pass validation: Sectors differ).
        let Upstreams::NoneUsable(reason) = choose(&["172.16.0.53"], Some(&["1.1.1.1"])) else {
            panic!("none usable");
        };
        assert!(
            reason.contains("172.16.0.53 is inside this Sector's subnet 172.16.0.0/24")
                && reason.contains("spec.defaults.dns_upstreams of the Cluster manifest"),
            "{reason}"
        );
    }
}
