//! The gRPC surface: every caller sees, streams and marks only their own notifications
//! (admins included: a notification is a personal message).

use mercato::pb::notification::v1 as pb;
use mercato::pb::notification::v1::notification_service_server::NotificationService;
use mercato_kernel::auth::Principal;
use mercato_kernel::db::{DbConn, DbPool};
use mercato_kernel::error::{self, FieldViolations};
use mercato_kernel::pagination;
use mercato_kernel::shutdown::ShutdownSignal;
use mercato_kernel::time::to_timestamp;
use mercato_kernel::validate;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::live::{LiveFeed, NotificationStream};
use crate::store::{self, NotificationRow};

const KIND_PREFIX: &str = "NOTIFICATION_KIND_";

/// How a kind is stored: its proto name without the prefix, e.g. "ORDER_CONFIRMED".
pub fn kind_name(kind: pb::NotificationKind) -> &'static str {
    let name = kind.as_str_name();
    name.strip_prefix(KIND_PREFIX).unwrap_or(name)
}

fn kind_of(stored: &str) -> pb::NotificationKind {
    pb::NotificationKind::from_str_name(&format!("{KIND_PREFIX}{stored}"))
        .unwrap_or(pb::NotificationKind::Unspecified)
}

/// The proto message of a stored notification.
pub fn notification_message(row: NotificationRow) -> pb::Notification {
    pb::Notification {
        id: row.id.to_string(),
        user_id: row.user_id,
        kind: kind_of(&row.kind) as i32,
        title: row.title,
        body: row.body,
        order_id: row.order_id,
        read: row.read_at.is_some(),
        read_time: row.read_at.map(to_timestamp),
        create_time: Some(to_timestamp(row.created_at)),
    }
}

/// The notification service's gRPC API.
#[derive(Clone)]
pub struct NotificationApi {
    db: DbPool,
    live: LiveFeed,
    shutdown: ShutdownSignal,
}

impl NotificationApi {
    /// An API over `db`, streaming from `live` until `shutdown`.
    pub fn new(db: DbPool, live: LiveFeed, shutdown: ShutdownSignal) -> Self {
        Self { db, live, shutdown }
    }

    async fn conn(&self) -> Result<DbConn, Status> {
        self.db.get().await.map_err(error::pool)
    }
}

/// The page cursor as it travels in a token: (created_at in microseconds, id).
type TokenCursor = (i64, Uuid);

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let user_id = Principal::of(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = FieldViolations::new();
        let limit = pagination::page_size_or_violation(req.page_size, &mut v);
        let fingerprint =
            pagination::fingerprint(&[if req.unread_only { "unread" } else { "all" }]);
        let after = match pagination::decode::<TokenCursor>(&req.page_token, fingerprint) {
            Ok(cursor) => cursor,
            Err(status) => {
                v.add("page_token", status.message());
                None
            }
        };
        v.into_result()?;
        let limit = limit.unwrap_or(pagination::DEFAULT_PAGE_SIZE);
        let after = match after {
            Some((micros, id)) => Some((
                chrono::DateTime::from_timestamp_micros(micros).ok_or_else(|| {
                    error::invalid_argument("page_token", "malformed or expired page token")
                })?,
                id,
            )),
            None => None,
        };
        let mut conn = self.conn().await?;
        // One extra row tells whether another page exists.
        let mut rows = store::list(&mut conn, &user_id, req.unread_only, after, limit + 1)
            .await
            .map_err(error::database)?;
        let unread = store::unread_count(&mut conn, &user_id)
            .await
            .map_err(error::database)?;
        let next_page_token = pagination::trim_page(&mut rows, limit)
            .map(|last| {
                pagination::encode(fingerprint, &(last.created_at.timestamp_micros(), last.id))
            })
            .unwrap_or_default();
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: rows.into_iter().map(notification_message).collect(),
            next_page_token,
            unread_count: i32::try_from(unread).unwrap_or(i32::MAX),
        }))
    }

    type StreamNotificationsStream = NotificationStream;

    async fn stream_notifications(
        &self,
        request: Request<pb::StreamNotificationsRequest>,
    ) -> Result<Response<Self::StreamNotificationsStream>, Status> {
        let user_id = Principal::of(&request)?.subject.clone();
        // Subscribed before the response goes out: whatever is written after the call
        // returns reaches the client.
        let stream = self.live.subscribe(user_id, self.shutdown.clone());
        Ok(Response::new(stream))
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        let user_id = Principal::of(&request)?.subject.clone();
        let raw = request.into_inner().id;
        let id = validate::parse_uuid("id", &raw).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let row = store::mark_read(&mut conn, &user_id, id)
            .await
            .map_err(error::database)?
            .ok_or_else(|| error::not_found("notification", &raw))?;
        Ok(Response::new(pb::MarkReadResponse {
            notification: Some(notification_message(row)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_storage() {
        for kind in [
            pb::NotificationKind::Welcome,
            pb::NotificationKind::OrderPlaced,
            pb::NotificationKind::OrderConfirmed,
            pb::NotificationKind::OrderCancelled,
            pb::NotificationKind::OrderShipped,
            pb::NotificationKind::PaymentFailed,
            pb::NotificationKind::PaymentRefunded,
        ] {
            assert_eq!(kind_of(kind_name(kind)), kind);
        }
        assert_eq!(
            kind_name(pb::NotificationKind::OrderShipped),
            "ORDER_SHIPPED"
        );
    }
}
