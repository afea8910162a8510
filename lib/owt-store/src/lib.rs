//! The only crate that touches SQLite. Durable state of owt-rs lives in one file
//! (`/var/lib/owt/owt.db`) in WAL mode: services with their keys, rooms (the full OWT room
//! document as JSON beside indexed columns), conference tokens and the token-signing key.
//! The schema evolves by numbered migrations recorded in `PRAGMA user_version`.

use owt_types::room::RoomConfig;
use owt_types::ObjectId;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database {path}: {message}")]
    Open { path: String, message: String },
    #[error("database schema version {found} is newer than this program knows ({known}); upgrade owt-rs")]
    TooNew { found: i64, known: i64 },
    #[error("database is not initialised; run `owtctl init`")]
    NotInitialised,
    #[error("stored room {id} is corrupt: {message}")]
    CorruptRoom { id: String, message: String },
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Each entry moves the schema from version N to N+1. Never edit a released entry; append.
const MIGRATIONS: &[&str] = &[
    // 1: the admin plane.
    "CREATE TABLE services (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        key TEXT NOT NULL,
        is_super INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL
     );
     CREATE TABLE rooms (
        id TEXT PRIMARY KEY,
        service_id TEXT NOT NULL REFERENCES services(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        config TEXT NOT NULL,
        created_ms INTEGER NOT NULL
     );
     CREATE INDEX rooms_by_service ON rooms(service_id, id);
     CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        service_id TEXT NOT NULL,
        user TEXT NOT NULL,
        role TEXT NOT NULL,
        origin TEXT NOT NULL,
        code TEXT NOT NULL,
        host TEXT NOT NULL,
        secure INTEGER NOT NULL,
        domain TEXT,
        created_ms INTEGER NOT NULL
     );
     CREATE INDEX tokens_by_age ON tokens(created_ms);
     CREATE TABLE keys (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
     );",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub key: String,
    pub is_super: bool,
    pub room_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Room {
    pub id: String,
    pub service_id: String,
    pub config: RoomConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub room_id: String,
    pub service_id: String,
    pub user: String,
    pub role: String,
    /// `{"isp": .., "region": ..}` as JSON text.
    pub origin: String,
    pub code: String,
    pub host: String,
    pub secure: bool,
    pub domain: Option<String>,
    pub created_ms: i64,
}

pub struct Store {
    conn: Connection,
}

fn random_hex(bytes: usize) -> String {
    let data: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(data)
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Open { path: path.display().to_string(), message: e.to_string() })?;
        Self::setup(conn)
    }

    /// Opens an existing database and fails with [`StoreError::NotInitialised`] when there is
    /// none or `owtctl init` never ran on it.
    pub fn open_initialised(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(StoreError::NotInitialised);
        }
        let store = Self::open(path)?;
        if store.super_service()?.is_none() {
            return Err(StoreError::NotInitialised);
        }
        Ok(store)
    }

    pub fn open_in_memory() -> Result<Store> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Store> {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew { found: version, known });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        Ok(Store { conn })
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
    }

    // ---- keys -------------------------------------------------------------------------

    fn key(&self, name: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT value FROM keys WHERE name = ?1", [name], |row| row.get(0)).optional()?)
    }

    /// The token-signing key (64 random bytes as hex), created on first use. It survives
    /// restarts so outstanding tokens stay valid.
    pub fn token_key(&self) -> Result<String> {
        if let Some(key) = self.key("token")? {
            return Ok(key);
        }
        let key = random_hex(64);
        self.conn.execute("INSERT OR IGNORE INTO keys(name, value) VALUES ('token', ?1)", [&key])?;
        Ok(self.key("token")?.unwrap_or(key))
    }

    /// Replaces the token-signing key; tokens signed with the old one stop verifying.
    pub fn rotate_token_key(&self) -> Result<String> {
        let key = random_hex(64);
        self.conn.execute("INSERT OR REPLACE INTO keys(name, value) VALUES ('token', ?1)", [&key])?;
        Ok(key)
    }

    // ---- services ---------------------------------------------------------------------

    fn service_rooms(&self, service_id: &str) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached("SELECT id FROM rooms WHERE service_id = ?1 ORDER BY id")?;
        let ids = stmt.query_map([service_id], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    fn service_from_row(&self, row: (String, String, String, bool)) -> Result<Service> {
        let room_ids = self.service_rooms(&row.0)?;
        Ok(Service { id: row.0, name: row.1, key: row.2, is_super: row.3, room_ids })
    }

    /// Creates a service; `key` None generates a random one. Names are unique.
    pub fn create_service(&self, name: &str, key: Option<&str>, is_super: bool) -> Result<Service> {
        let id = ObjectId::generate().to_string();
        let key = key.map(str::to_owned).unwrap_or_else(|| random_hex(32));
        let inserted = self.conn.execute(
            "INSERT INTO services(id, name, key, is_super, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, name, key, is_super, now_ms()],
        );
        match inserted {
            Ok(_) => Ok(Service { id, name: name.into(), key, is_super, room_ids: vec![] }),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(StoreError::Conflict(format!("a service named {name:?} already exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn service(&self, id: &str) -> Result<Option<Service>> {
        let row = self
            .conn
            .query_row("SELECT id, name, key, is_super FROM services WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        row.map(|row| self.service_from_row(row)).transpose()
    }

    pub fn super_service(&self) -> Result<Option<Service>> {
        let row = self
            .conn
            .query_row("SELECT id, name, key, is_super FROM services WHERE is_super = 1 ORDER BY id LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        row.map(|row| self.service_from_row(row)).transpose()
    }

    pub fn services(&self) -> Result<Vec<Service>> {
        let rows: Vec<(String, String, String, bool)> = {
            let mut stmt = self.conn.prepare_cached("SELECT id, name, key, is_super FROM services ORDER BY id")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?;
            rows
        };
        rows.into_iter().map(|row| self.service_from_row(row)).collect()
    }

    /// Deletes a service with its rooms and tokens. Returns false when there was none.
    pub fn delete_service(&self, id: &str) -> Result<bool> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM tokens WHERE service_id = ?1", [id])?;
        tx.execute("DELETE FROM rooms WHERE service_id = ?1", [id])?;
        let deleted = tx.execute("DELETE FROM services WHERE id = ?1", [id])? > 0;
        tx.commit()?;
        Ok(deleted)
    }

    // ---- rooms ------------------------------------------------------------------------

    fn room_from_row(id: String, service_id: String, config: String) -> Result<Room> {
        let value: serde_json::Value = serde_json::from_str(&config)
            .map_err(|e| StoreError::CorruptRoom { id: id.clone(), message: e.to_string() })?;
        let config = RoomConfig::from_stored(&value)
            .map_err(|e| StoreError::CorruptRoom { id: id.clone(), message: e.to_string() })?;
        Ok(Room { id, service_id, config })
    }

    pub fn create_room(&self, service_id: &str, config: &RoomConfig) -> Result<Room> {
        let id = ObjectId::generate().to_string();
        self.conn.execute(
            "INSERT INTO rooms(id, service_id, name, config, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, service_id, config.name, config.to_json(&id).to_string(), now_ms()],
        )?;
        Ok(Room { id, service_id: service_id.into(), config: config.clone() })
    }

    /// The room if it exists and belongs to `service_id`.
    pub fn room(&self, service_id: &str, id: &str) -> Result<Option<Room>> {
        let row = self
            .conn
            .query_row(
                "SELECT id, service_id, config FROM rooms WHERE id = ?1 AND service_id = ?2",
                [id, service_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        row.map(|(id, service, config)| Self::room_from_row(id, service, config)).transpose()
    }

    /// A room by id whatever its service (signaling: the token names the room).
    pub fn room_by_id(&self, id: &str) -> Result<Option<Room>> {
        let row = self
            .conn
            .query_row("SELECT id, service_id, config FROM rooms WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        row.map(|(id, service, config)| Self::room_from_row(id, service, config)).transpose()
    }

    /// Rooms of a service sorted by id; `per_page` 0 means all, `page` is 1-based.
    pub fn rooms(&self, service_id: &str, page: u32, per_page: u32) -> Result<Vec<Room>> {
        let (limit, offset) = if per_page == 0 {
            (-1i64, 0i64)
        } else {
            (per_page as i64, (page.max(1) as i64 - 1).saturating_mul(per_page as i64))
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, service_id, config FROM rooms WHERE service_id = ?1 ORDER BY id LIMIT ?2 OFFSET ?3",
        )?;
        let rows: Vec<(String, String, String)> = stmt
            .query_map(params![service_id, limit, offset], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter().map(|(id, service, config)| Self::room_from_row(id, service, config)).collect()
    }

    /// Replaces a room's configuration. Returns false when the room is not the service's.
    pub fn update_room(&self, service_id: &str, id: &str, config: &RoomConfig) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE rooms SET name = ?1, config = ?2 WHERE id = ?3 AND service_id = ?4",
            params![config.name, config.to_json(id).to_string(), id, service_id],
        )? > 0)
    }

    pub fn delete_room(&self, service_id: &str, id: &str) -> Result<bool> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM tokens WHERE room_id = ?1 AND service_id = ?2", [id, service_id])?;
        let deleted = tx.execute("DELETE FROM rooms WHERE id = ?1 AND service_id = ?2", [id, service_id])? > 0;
        tx.commit()?;
        Ok(deleted)
    }

    // ---- tokens -----------------------------------------------------------------------

    pub fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        self.conn.execute(
            "INSERT INTO tokens(id, room_id, service_id, user, role, origin, code, host, secure, domain, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                token.id,
                token.room_id,
                token.service_id,
                token.user,
                token.role,
                token.origin,
                token.code,
                token.host,
                token.secure,
                token.domain,
                token.created_ms
            ],
        )?;
        Ok(())
    }

    /// Removes and returns a token (tokens are single use), purging tokens older than
    /// `max_age_ms` on the way. A token older than that is returned too, so the caller can
    /// tell "expired" from "unknown".
    pub fn take_token(&self, id: &str, now_ms: i64, max_age_ms: i64) -> Result<Option<TokenRecord>> {
        let tx = self.conn.unchecked_transaction()?;
        let token = tx
            .query_row(
                "SELECT id, room_id, service_id, user, role, origin, code, host, secure, domain, created_ms
                 FROM tokens WHERE id = ?1",
                [id],
                |r| {
                    Ok(TokenRecord {
                        id: r.get(0)?,
                        room_id: r.get(1)?,
                        service_id: r.get(2)?,
                        user: r.get(3)?,
                        role: r.get(4)?,
                        origin: r.get(5)?,
                        code: r.get(6)?,
                        host: r.get(7)?,
                        secure: r.get(8)?,
                        domain: r.get(9)?,
                        created_ms: r.get(10)?,
                    })
                },
            )
            .optional()?;
        tx.execute("DELETE FROM tokens WHERE id = ?1 OR created_ms < ?2", params![id, now_ms - max_age_ms])?;
        tx.commit()?;
        Ok(token)
    }

    pub fn token_count(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get(0))?)
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn room(name: &str) -> RoomConfig {
        RoomConfig::create(&json!(name), None).unwrap()
    }

    #[test]
    fn migrations_run_once_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owt.db");
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
            let service = store.create_service("super", None, true).unwrap();
            store.create_room(&service.id, &room("r1")).unwrap();
        }
        let store = Store::open_initialised(&path).unwrap();
        let service = store.super_service().unwrap().unwrap();
        assert_eq!(service.room_ids.len(), 1);
        let journal: String = store.conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(journal, "wal");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owt.db");
        drop(Store::open(&path).unwrap());
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(Store::open(&path), Err(StoreError::TooNew { found: 99, .. })));
    }

    #[test]
    fn uninitialised_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owt.db");
        assert!(matches!(Store::open_initialised(&path), Err(StoreError::NotInitialised)));
        drop(Store::open(&path).unwrap());
        assert!(matches!(Store::open_initialised(&path), Err(StoreError::NotInitialised)));
    }

    #[test]
    fn rooms_belong_to_their_service() {
        let store = Store::open_in_memory().unwrap();
        let a = store.create_service("a", None, true).unwrap();
        let b = store.create_service("b", Some("bkey"), false).unwrap();
        assert!(matches!(store.create_service("b", None, false), Err(StoreError::Conflict(_))));
        let r = store.create_room(&a.id, &room("r")).unwrap();
        assert!(store.room(&b.id, &r.id).unwrap().is_none());
        assert!(!store.update_room(&b.id, &r.id, &room("x")).unwrap());
        assert!(!store.delete_room(&b.id, &r.id).unwrap());
        assert_eq!(store.room(&a.id, &r.id).unwrap().unwrap().config.name, "r");
        assert!(store.update_room(&a.id, &r.id, &room("renamed")).unwrap());
        assert_eq!(store.room(&a.id, &r.id).unwrap().unwrap().config.name, "renamed");
        assert!(store.delete_room(&a.id, &r.id).unwrap());
        assert!(store.room(&a.id, &r.id).unwrap().is_none());
    }

    #[test]
    fn pagination_is_one_based_and_sorted() {
        let store = Store::open_in_memory().unwrap();
        let s = store.create_service("s", None, true).unwrap();
        let ids: Vec<String> = (0..5).map(|i| store.create_room(&s.id, &room(&format!("r{i}"))).unwrap().id).collect();
        let all: Vec<String> = store.rooms(&s.id, 0, 0).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(all, ids);
        let page2: Vec<String> = store.rooms(&s.id, 2, 2).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(page2, ids[2..4]);
        assert!(store.rooms(&s.id, 9, 2).unwrap().is_empty());
    }

    #[test]
    fn tokens_are_single_use_and_purged_when_old() {
        let store = Store::open_in_memory().unwrap();
        let s = store.create_service("s", None, true).unwrap();
        let r = store.create_room(&s.id, &room("r")).unwrap();
        let token = |id: &str, created_ms| TokenRecord {
            id: id.into(),
            room_id: r.id.clone(),
            service_id: s.id.clone(),
            user: "u".into(),
            role: "presenter".into(),
            origin: "{}".into(),
            code: "12345678901".into(),
            host: "127.0.0.1:8080".into(),
            secure: false,
            domain: None,
            created_ms,
        };
        store.insert_token(&token("t1", 1_000_000)).unwrap();
        store.insert_token(&token("old", 1)).unwrap();
        assert_eq!(store.take_token("t1", 1_000_100, 180_000).unwrap(), Some(token("t1", 1_000_100 - 100)));
        assert_eq!(store.take_token("t1", 1_000_100, 180_000).unwrap(), None);
        assert_eq!(store.token_count().unwrap(), 0, "old token purged");
    }

    #[test]
    fn deleting_a_service_removes_its_rooms() {
        let store = Store::open_in_memory().unwrap();
        let s = store.create_service("s", None, false).unwrap();
        let r = store.create_room(&s.id, &room("r")).unwrap();
        assert!(store.delete_service(&s.id).unwrap());
        assert!(store.room(&s.id, &r.id).unwrap().is_none());
        assert!(!store.delete_service(&s.id).unwrap());
    }

    #[test]
    fn token_key_is_stable_until_rotated() {
        let store = Store::open_in_memory().unwrap();
        let key = store.token_key().unwrap();
        assert_eq!(key.len(), 128);
        assert_eq!(store.token_key().unwrap(), key);
        let rotated = store.rotate_token_key().unwrap();
        assert_ne!(rotated, key);
        assert_eq!(store.token_key().unwrap(), rotated);
    }
}
