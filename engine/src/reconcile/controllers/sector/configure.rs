//! Rendering what goes into a Sector's running gateway and DNS containers,
//! and deciding whether it must be pushed (its digest differs from the one
//! recorded after the last push). Each goes in as one bundle that the
//! helper inside the appliance checks, switches to and loads
//! ([`crate::host::bundle`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use orbitlab_manifests::{ApplianceRole, Kind, Name, Protocol as SpecProtocol, SectorSpec};
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
    Protocol, RenderedFile,
};

impl Planner<'_> {
    /// Configuration steps for the Sector's two containers, once both run
    /// and every address they need is allocated; none before that (a later
    /// pass plans them). `Err` when the configuration cannot be rendered:
    /// the Sector is blocked with the reason, never silently left waiting.
    pub(super) fn configure_sector(
        &self,
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
                let to = match (&rule.to_address, &rule.to_instance) {
                    (Some(addr), _) => *addr,
                    (None, Some(instance)) => {
                        // A missing target blocks the Sector (see
                        // `ingress_without_target`); the other rules are pushed.
                        self.instance_address(name, spec, instance.as_ref())?
                    }
                    (None, None) => return None,
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
        let dns_config = DnsConfig::new(DnsSpec {
            sector: sector_label,
            listen: role_address(first, ApplianceRole::Dns),
            upstreams: Vec::new(),
            records,
        })
        .map_err(|e| format!("cannot render the Sector DNS's configuration: {e}"))?;

        let mut steps = Vec::new();
        for (marker, vmid, node, files) in [
            (
                gateway,
                gw_vmid,
                &gw.node,
                render::gateway_files(&gateway_config),
            ),
            (dns, dns_vmid, &dns_c.node, render::dns_files(&dns_config)),
        ] {
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

    /// Why a declared ingress rule cannot forward: the first rule whose
    /// target instance has no address in this Sector (it does not exist,
    /// or has not been given one yet); `None` when every rule has a target.
    pub(super) fn ingress_without_target(
        &self,
        sector: &Name,
        spec: &SectorSpec,
    ) -> Option<String> {
        spec.ingress.iter().find_map(|rule| {
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
