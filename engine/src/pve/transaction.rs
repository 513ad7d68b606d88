//! [`SdnTransaction`]: the one way SDN edits are made and applied.
//!
//! SDN edits stay pending until `PUT /cluster/sdn` applies everything
//! pending, cluster-wide; so edits and their apply must be serialised
//! among OrbitLab's agents and, on 9.x, with anyone else using Proxmox's
//! global SDN lock. On 9.x a transaction holds that lock (its
//! `lock-token` goes to every edit and to the apply, which releases it);
//! on 8.x, which has no such lock, it holds a guard the caller supplies
//! (OrbitLab's `orbitlab-sdn` cluster lock).
//!
//! Side effects: `POST /cluster/sdn/lock` when it begins on 9.x, the
//! apply, and — when a transaction ends without a successful apply,
//! including when it is dropped — `DELETE /cluster/sdn/lock`, leaving the
//! edits made so far pending.

use std::time::Duration;

use super::api::Pve;
use super::error::{PveError, Result};
use super::sdn::SdnLockToken;
use super::types::TaskStatus;

/// Who may edit SDN while the transaction lasts.
#[derive(Debug)]
enum Holder<G> {
    /// 9.x: Proxmox's global SDN lock.
    Proxmox(SdnLockToken),
    /// 8.x: the caller's own lock.
    Outside(G),
}

/// SDN edits under one lock, ended by [`SdnTransaction::apply`] or by
/// being dropped (which releases the 9.x lock without applying).
#[derive(Debug)]
pub struct SdnTransaction<'p, G> {
    pve: &'p dyn Pve,
    /// `None` once the apply consumed it.
    holder: Option<Holder<G>>,
}

impl<'p, G> SdnTransaction<'p, G> {
    /// Takes the SDN lock: Proxmox's on 9.x (`allow_pending`: whether
    /// changes someone left pending may exist), else the guard `outside`
    /// returns, which is only called then.
    pub fn begin<E: From<PveError>>(
        pve: &'p dyn Pve,
        allow_pending: bool,
        outside: impl FnOnce() -> std::result::Result<G, E>,
    ) -> std::result::Result<Self, E> {
        let holder = match pve.sdn_lock(allow_pending)? {
            Some(token) => Holder::Proxmox(token),
            None => Holder::Outside(outside()?),
        };
        Ok(SdnTransaction {
            pve,
            holder: Some(holder),
        })
    }

    /// The token every edit must pass (`None` on 8.x).
    pub fn token(&self) -> Option<&SdnLockToken> {
        match &self.holder {
            Some(Holder::Proxmox(token)) => Some(token),
            _ => None,
        }
    }

    /// Applies everything pending and waits for the apply task up to
    /// `deadline`. The apply releases the 9.x lock; if it is refused, the
    /// lock is released here. The 8.x guard is held until the task ended.
    pub fn apply(mut self, deadline: Duration) -> Result<TaskStatus> {
        let upid = self.pve.sdn_apply(self.token(), true)?;
        let holder = self.holder.take();
        let status = self.pve.wait_task(&upid, deadline);
        drop(holder);
        status
    }
}

impl<G> Drop for SdnTransaction<'_, G> {
    fn drop(&mut self) {
        if let Some(Holder::Proxmox(token)) = &self.holder
            && let Err(e) = self.pve.sdn_unlock(token, false)
        {
            tracing::warn!("releasing the SDN lock of an unapplied transaction: {e}");
        }
    }
}
