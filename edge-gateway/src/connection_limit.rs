//! A bound on the open connections of one client address (`MERCATO_MAX_CONNECTIONS_PER_IP`):
//! one client cannot hold every socket and worker of the gateway, e.g. with bodies it never
//! finishes or idle keep-alive connections, while other clients still get in. A connection
//! over the bound is closed at once, before any byte is read. The address is the TCP peer's:
//! behind a load balancer that is the balancer, so size the bound for it there (or set 0).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Open connections per client address.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionLimit {
    /// At most `max` open connections per address; 0 means no bound.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `ip`, unless it holds `max` already.
    pub fn admit(&self, ip: IpAddr) -> Option<Permit> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if self.max != 0 && *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Permit {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_own_places_back_when_its_connections_close() {
        let limit = ConnectionLimit::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limit.admit(a).unwrap();
        let _second = limit.admit(a).unwrap();
        assert!(limit.admit(a).is_none());
        assert!(limit.admit(b).is_some(), "others are not affected");
        drop(first);
        let _third = limit.admit(a).expect("a place came back");
        // An IPv4-mapped IPv6 peer is the same client.
        assert!(limit.admit("::ffff:192.0.2.1".parse().unwrap()).is_none());
    }

    #[test]
    fn zero_means_no_bound() {
        let limit = ConnectionLimit::new(0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let permits: Vec<_> = (0..1000).filter_map(|_| limit.admit(ip)).collect();
        assert_eq!(permits.len(), 1000);
    }
}
