//! The feed of projected changes behind WatchOrder, fed by the projector after each commit
//! (so a watcher never polls the database) and shared with every replica through the
//! kernel's change feed: a watcher on one replica sees what another one projected.

use std::sync::Arc;

use mercato::pb::orderquery::v1::OrderView;
use mercato_kernel::events::ChangeFeed;
use tokio::sync::{Mutex, MutexGuard, broadcast};

/// How many changes a slow watcher may fall behind before it re-reads the order.
pub const FEED_CAPACITY: usize = 1024;

/// New order states, as projected.
#[derive(Clone)]
pub struct OrderFeed {
    changes: ChangeFeed<OrderView>,
    /// Held while a state is read and published (projector), and while a new watcher
    /// subscribes and reads its first state: a watcher then never receives a state older
    /// than the one it started from, nor misses one in between.
    serial: Arc<Mutex<()>>,
}

impl OrderFeed {
    /// A feed keeping up to `capacity` changes per lagging receiver.
    pub fn new(capacity: usize) -> Self {
        Self {
            changes: ChangeFeed::new(capacity),
            serial: Arc::new(Mutex::new(())),
        }
    }

    /// Excludes other readers-and-publishers until the guard is dropped.
    pub async fn serialize(&self) -> MutexGuard<'_, ()> {
        self.serial.lock().await
    }

    /// The feed to share with the other replicas.
    pub fn changes(&self) -> &ChangeFeed<OrderView> {
        &self.changes
    }

    /// Announces the new state of an order, here and to the other replicas.
    pub fn publish(&self, view: OrderView) {
        self.changes.publish(view);
    }

    /// Every change from now on, whichever replica projected it.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<OrderView>> {
        self.changes.subscribe()
    }
}
