//! The gRPC surface of the read side: GetOrder (cache-aside), ListOrders (keyset pages) and
//! WatchOrder (the current state, then every projected change from the feed).

use std::sync::Arc;
use std::time::Duration;

use mercato::pb::orderquery::v1 as pb;
use mercato::pb::orderquery::v1::OrderView;
use mercato::pb::orderquery::v1::order_query_service_server::OrderQueryService;
use mercato_kernel::auth::Principal;
use mercato_kernel::db::{DbConn, DbPool};
use mercato_kernel::error::{self, FieldViolations};
use mercato_kernel::pagination;
use mercato_kernel::shutdown::ShutdownSignal;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cache::OrderCache;
use crate::domain::{self, MAX_USER_ID_LEN};
use crate::store::{self, ListQuery};
use crate::watch::OrderFeed;

/// How long WatchOrder waits for an order the read model does not have yet (it was just
/// placed and its event is on the way) before answering NOT_FOUND.
const APPEAR_WAIT: Duration = Duration::from_secs(3);

/// Messages a watcher's stream may buffer before the client reads them.
const WATCH_BUFFER: usize = 16;

/// The order-query gRPC service.
#[derive(Clone)]
pub struct OrderQueryApi {
    db: DbPool,
    cache: OrderCache,
    feed: OrderFeed,
    shutdown: ShutdownSignal,
}

impl OrderQueryApi {
    /// A service reading `db` through `cache`; watchers follow `feed` until `shutdown`.
    pub fn new(db: DbPool, cache: OrderCache, feed: OrderFeed, shutdown: ShutdownSignal) -> Self {
        Self {
            db,
            cache,
            feed,
            shutdown,
        }
    }

    async fn conn(&self) -> Result<DbConn, Status> {
        self.db.get().await.map_err(error::pool)
    }

    async fn load(&self, id: Uuid) -> Result<Option<OrderView>, Status> {
        let mut conn = self.conn().await?;
        store::order_view(&mut conn, id)
            .await
            .map_err(error::database)
    }

    /// Subscribes to the feed and reads the order's state, waiting a little for an order not
    /// projected yet (NOT_FOUND after that). Under the feed's lock, so the subscription
    /// carries exactly the changes after the state returned.
    ///
    /// An order `principal` may not see is treated as one that does not exist yet: it is
    /// waited for just the same and answered with the same NOT_FOUND, so neither the answer
    /// nor its timing tells another customer's order from a made-up id.
    async fn subscribe(
        &self,
        principal: &Principal,
        id: Uuid,
    ) -> Result<(OrderView, broadcast::Receiver<Arc<OrderView>>), Status> {
        let (current, mut changes) = {
            let _serial = self.feed.serialize().await;
            let changes = self.feed.subscribe();
            (self.load(id).await?, changes)
        };
        if let Some(view) = current.filter(|view| visible(principal, view)) {
            return Ok((view, changes));
        }
        let view = self.wait_for(principal, id, &mut changes).await?;
        Ok((view, changes))
    }

    /// The order once it is projected (and visible to `principal`), or NOT_FOUND after
    /// [`APPEAR_WAIT`].
    async fn wait_for(
        &self,
        principal: &Principal,
        id: Uuid,
        changes: &mut broadcast::Receiver<Arc<OrderView>>,
    ) -> Result<OrderView, Status> {
        let wanted = id.to_string();
        let deadline = tokio::time::Instant::now() + APPEAR_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Ok(Ok(view)) if view.id == wanted && visible(principal, &view) => {
                    return Ok(view.as_ref().clone());
                }
                Ok(Ok(_)) => {}
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    if let Some(view) = self.load(id).await?.filter(|v| visible(principal, v)) {
                        return Ok(view);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => break,
            }
        }
        self.load(id)
            .await?
            .filter(|view| visible(principal, view))
            .ok_or_else(|| error::not_found("order", &wanted))
    }
}

/// Whether `principal` may see `view` (its owner, or an admin).
fn visible(principal: &Principal, view: &OrderView) -> bool {
    principal
        .require_owner_or_admin(&view.user_id, "order", &view.id)
        .is_ok()
}

type WatchStream = ReceiverStream<Result<pb::WatchOrderResponse, Status>>;

#[tonic::async_trait]
impl OrderQueryService for OrderQueryApi {
    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let principal = Principal::of(&request)?;
        let id = domain::parse_order_id("id", &request.get_ref().id)
            .map_err(FieldViolations::into_status)?;
        let key = id.to_string();
        let view = match self.cache.get(&key).await {
            Some(view) => view,
            None => {
                let view = self
                    .load(id)
                    .await?
                    .ok_or_else(|| error::not_found("order", &key))?;
                self.cache.put_if_absent(&view.id, &view).await;
                view
            }
        };
        principal.require_owner_or_admin(&view.user_id, "order", &key)?;
        Ok(Response::new(pb::GetOrderResponse { order: Some(view) }))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let principal = Principal::of(&request)?;
        let req = request.get_ref();
        let mut v = FieldViolations::new();
        let limit = pagination::page_size_or_violation(req.page_size, &mut v);
        let status = domain::parse_status_filter(req.status)
            .map_err(|m| v.add("status", m))
            .ok();
        if req.user_id.len() > MAX_USER_ID_LEN {
            v.add(
                "user_id",
                format!("must be at most {MAX_USER_ID_LEN} characters"),
            );
        }
        let (Some(limit), Some(status), true) = (limit, status, v.is_empty()) else {
            return Err(v.into_status());
        };
        let user_id = if principal.is_admin() {
            (!req.user_id.is_empty()).then(|| req.user_id.clone())
        } else if req.user_id.is_empty() || req.user_id == principal.subject {
            Some(principal.subject.clone())
        } else {
            return Err(error::permission_denied(
                "NOT_OWN_ORDERS",
                "only administrators may list other users' orders",
            ));
        };
        let status = status.map(|s| i16::try_from(s as i32).unwrap_or(0));
        // The token is bound to the effective filters (a customer's empty user_id and their
        // own id are the same listing).
        let user_part = user_id
            .as_deref()
            .map_or("*".to_owned(), |u| format!("u:{u}"));
        let status_part = status.map(|s| s.to_string()).unwrap_or_default();
        let fingerprint = pagination::fingerprint(&[&user_part, &status_part]);
        let after: Option<(i64, Uuid)> = pagination::decode(&req.page_token, fingerprint)?;
        let mut conn = self.conn().await?;
        // One extra row tells whether another page exists.
        let mut orders = store::list_orders(
            &mut conn,
            &ListQuery {
                user_id,
                status,
                after,
                limit: limit + 1,
            },
        )
        .await
        .map_err(error::database)?;
        let next_page_token = pagination::trim_page(&mut orders, limit)
            .map(|last| {
                let micros = last
                    .create_time
                    .as_ref()
                    .map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000);
                let id = Uuid::parse_str(&last.id).map_err(error::internal)?;
                Ok::<_, Status>(pagination::encode(fingerprint, &(micros, id)))
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Response::new(pb::ListOrdersResponse {
            orders,
            next_page_token,
        }))
    }

    type WatchOrderStream = WatchStream;

    async fn watch_order(
        &self,
        request: Request<pb::WatchOrderRequest>,
    ) -> Result<Response<Self::WatchOrderStream>, Status> {
        let principal = Principal::of(&request)?.clone();
        let id = domain::parse_order_id("id", &request.get_ref().id)
            .map_err(FieldViolations::into_status)?;
        let (first, changes) = self.subscribe(&principal, id).await?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let watcher = Watcher {
            api: self.clone(),
            id,
            changes,
            tx,
            last: first,
        };
        tokio::spawn(watcher.run());
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// One WatchOrder stream: sends the current state, then each new state of its order, until
/// the client goes away or the service shuts down.
struct Watcher {
    api: OrderQueryApi,
    id: Uuid,
    changes: broadcast::Receiver<Arc<OrderView>>,
    tx: mpsc::Sender<Result<pb::WatchOrderResponse, Status>>,
    last: OrderView,
}

impl Watcher {
    async fn send(&self, view: OrderView) -> bool {
        self.tx
            .send(Ok(pb::WatchOrderResponse { order: Some(view) }))
            .await
            .is_ok()
    }

    async fn run(mut self) {
        if !self.send(self.last.clone()).await {
            return;
        }
        let wanted = self.id.to_string();
        let shutdown = self.api.shutdown.clone();
        tokio::pin! {
            let stopping = shutdown.requested();
        }
        loop {
            let next = tokio::select! {
                () = &mut stopping => return,
                () = self.tx.closed() => return,
                next = self.changes.recv() => next,
            };
            let view = match next {
                Ok(view) if view.id == wanted => view.as_ref().clone(),
                Ok(_) => continue,
                // Changes were dropped while this watcher was slow: the database has the
                // state they led to.
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(order_id = %wanted, missed, "watcher lagged; re-reading");
                    match self.api.load(self.id).await {
                        Ok(Some(view)) => view,
                        Ok(None) => continue,
                        Err(status) => {
                            let _ = self.tx.send(Err(status)).await;
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            // Nothing new (the state was already sent), or older than what was sent (a
            // re-read after lagging can overtake changes still buffered).
            if view == self.last || view.version < self.last.version {
                continue;
            }
            self.last = view.clone();
            if !self.send(view).await {
                return;
            }
        }
    }
}
