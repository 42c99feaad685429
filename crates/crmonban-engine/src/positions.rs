//! [`StorePositions`]: log read positions kept in the store, so that a restarted daemon resumes
//! each log where it stopped (the detection crate's `PositionStore`, over `crmonban_store`).

use crmonban_core::unix_now;
use crmonban_detect::source::{PositionFuture, PositionStore, SourcePosition};
use crmonban_store::{LogPosition, Store};

/// The store's `log_positions` table as the log sources' position store.
pub struct StorePositions(pub Store);

impl PositionStore for StorePositions {
    fn load<'a>(&'a self, source: &'a str) -> PositionFuture<'a, Option<SourcePosition>> {
        Box::pin(async move {
            let row = self
                .0
                .load_position(source)
                .await
                .map_err(|e| e.to_string())?;
            Ok(row.map(from_row))
        })
    }

    fn save<'a>(&'a self, position: &'a SourcePosition) -> PositionFuture<'a, ()> {
        Box::pin(async move {
            let row = to_row(position);
            self.0.save_position(&row).await.map_err(|e| e.to_string())
        })
    }

    fn load_resume<'a>(&'a self, source: &'a str) -> PositionFuture<'a, Option<SourcePosition>> {
        Box::pin(async move {
            let row = self
                .0
                .load_resume_point(source)
                .await
                .map_err(|e| e.to_string())?;
            Ok(row.map(from_row))
        })
    }

    fn save_resume<'a>(
        &'a self,
        source: &'a str,
        point: Option<&'a SourcePosition>,
    ) -> PositionFuture<'a, ()> {
        Box::pin(async move {
            let saved = match point {
                Some(point) => self.0.save_resume_point(&to_row(point)).await,
                None => self.0.clear_resume_point(source).await,
            };
            saved.map_err(|e| e.to_string())
        })
    }
}

fn from_row(p: LogPosition) -> SourcePosition {
    SourcePosition {
        source: p.source,
        inode: p.inode,
        offset: p.offset,
        first_line_hash: p.first_line_hash,
        cursor: p.cursor,
    }
}

fn to_row(position: &SourcePosition) -> LogPosition {
    LogPosition {
        source: position.source.clone(),
        inode: position.inode,
        offset: position.offset,
        first_line_hash: position.first_line_hash,
        cursor: position.cursor.clone(),
        updated_at: unix_now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn positions_round_trip_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).await.unwrap();
        let positions = StorePositions(store);
        assert_eq!(positions.load("/var/log/auth.log").await.unwrap(), None);
        let saved = SourcePosition {
            source: "/var/log/auth.log".into(),
            inode: Some(42),
            offset: Some(4096),
            first_line_hash: Some(u64::MAX - 1),
            cursor: None,
        };
        positions.save(&saved).await.unwrap();
        assert_eq!(
            positions.load("/var/log/auth.log").await.unwrap(),
            Some(saved.clone())
        );
        // The resume point is kept apart from the read-through position.
        let key = "/var/log/auth.log";
        assert_eq!(positions.load_resume(key).await.unwrap(), None);
        let point = SourcePosition {
            offset: Some(1024),
            ..saved.clone()
        };
        positions.save_resume(key, Some(&point)).await.unwrap();
        assert_eq!(positions.load_resume(key).await.unwrap(), Some(point));
        assert_eq!(positions.load(key).await.unwrap(), Some(saved));
        positions.save_resume(key, None).await.unwrap();
        assert_eq!(positions.load_resume(key).await.unwrap(), None);
    }
}
