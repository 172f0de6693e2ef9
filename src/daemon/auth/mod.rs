//! Who is calling: peer credentials on the Unix socket, bearer tokens anywhere; the users and
//! tokens behind them. Knows nothing of routes.
//!
//! Users and tokens are few and read on every request, so they live in memory, written
//! through to redb. Tokens are kept only as SHA-256 hashes.

mod accounts;
mod tokens;

pub use accounts::{Accounts, SystemAccounts};
pub use tokens::hash_token;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::catalog::Tier;
use super::clock;
use super::error::{Error, Result};
use super::store::{Store, TokenRecord, UserRecord};
use crate::api;

/// What the transport tells us about the caller.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Unix socket peer, from SO_PEERCRED.
    Peer {
        uid: u32,
    },
    Bearer(String),
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub tier: Tier,
    pub admin: bool,
    pub created_at_ms: i64,
}

impl User {
    fn from_record(r: &UserRecord) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            // An unknown tier (a newer rexecd's) is read as the least privileged one.
            tier: Tier::parse(&r.tier).unwrap_or(Tier::Guest),
            admin: r.admin,
            created_at_ms: r.created_at_ms,
        }
    }

    fn to_record(&self) -> UserRecord {
        UserRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            tier: self.tier.as_str().to_string(),
            admin: self.admin,
            created_at_ms: self.created_at_ms,
        }
    }

    pub fn to_api(&self) -> api::User {
        api::User {
            id: self.id.clone(),
            name: self.name.clone(),
            tier: self.tier.as_str().to_string(),
            admin: self.admin,
            created_at: clock::rfc3339(self.created_at_ms),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    scopes: Vec<Scope>,
}

impl Principal {
    pub fn can_read(&self) -> bool {
        self.scopes.contains(&Scope::Read) || self.can_write()
    }

    pub fn can_write(&self) -> bool {
        self.scopes.contains(&Scope::Write)
    }

    /// Admin rights need both an admin user and, over a token, the `admin` scope.
    pub fn is_admin(&self) -> bool {
        self.user.admin && self.scopes.contains(&Scope::Admin)
    }

    pub fn require_write(&self) -> Result<()> {
        if self.can_write() {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "token does not have the write scope".into(),
            ))
        }
    }

    pub fn require_read(&self) -> Result<()> {
        if self.can_read() {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "token does not have the read scope".into(),
            ))
        }
    }

    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Error::Forbidden("admin rights required".into()))
        }
    }
}

/// Minimum time between two stored `last_used_at` updates of one token.
const TOUCH_INTERVAL_MS: i64 = 60_000;

pub struct Auth {
    store: Store,
    accounts: Box<dyn Accounts>,
    local_tier: Tier,
    users: RwLock<HashMap<String, User>>,
    tokens: RwLock<HashMap<String, TokenRecord>>,
    write: tokio::sync::Mutex<()>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    hex::encode(buf)
}

/// User names: 1-64 of `[A-Za-z0-9._-]`, starting with a letter, digit or `_` (local account
/// names included).
pub fn valid_user_name(name: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(ok_char)
        && !name.starts_with(['-', '.'])
}

impl Auth {
    pub fn new(store: Store, accounts: Box<dyn Accounts>, local_tier: Tier) -> Result<Self> {
        let users = store
            .users()?
            .iter()
            .map(|r| (r.id.clone(), User::from_record(r)))
            .collect();
        let tokens = store
            .tokens()?
            .into_iter()
            .map(|t| (t.hash.clone(), t))
            .collect();
        Ok(Self {
            store,
            accounts,
            local_tier,
            users: RwLock::new(users),
            tokens: RwLock::new(tokens),
            write: tokio::sync::Mutex::new(()),
        })
    }

    pub async fn authenticate(&self, creds: &Credentials) -> Result<Principal> {
        match creds {
            Credentials::None => Err(Error::Unauthorized),
            Credentials::Bearer(token) => self.by_token(token).await,
            Credentials::Peer { uid } => self.by_peer(*uid).await,
        }
    }

    async fn by_token(&self, token: &str) -> Result<Principal> {
        let hash = hash_token(token);
        let now = clock::now_ms();
        let record = self.tokens.read().unwrap().get(&hash).cloned();
        let record = record
            .filter(|t| t.revoked_at_ms.is_none())
            .filter(|t| t.expires_at_ms.is_none_or(|e| e > now))
            .ok_or(Error::Unauthorized)?;
        let user = self.user(&record.user_id).ok_or(Error::Unauthorized)?;
        if record
            .last_used_at_ms
            .is_none_or(|t| now - t > TOUCH_INTERVAL_MS)
        {
            self.touch(&hash, now).await?;
        }
        let scopes = record
            .scopes
            .iter()
            .filter_map(|s| Scope::parse(s))
            .collect();
        Ok(Principal { user, scopes })
    }

    async fn by_peer(&self, uid: u32) -> Result<Principal> {
        let name = self
            .accounts
            .name_of(uid)
            .unwrap_or_else(|| format!("uid-{uid}"));
        let admin = self.accounts.is_admin(uid);
        let user = match self.user_by_name(&name) {
            Some(u) if u.admin == admin => u,
            Some(mut u) => {
                // Admin rights over the socket follow the host's account, now.
                u.admin = admin;
                self.save_user(&u).await?;
                u
            }
            None => self.insert_user(&name, self.local_tier, admin).await?,
        };
        Ok(Principal {
            user,
            scopes: vec![Scope::Read, Scope::Write, Scope::Admin],
        })
    }

    pub fn user(&self, id: &str) -> Option<User> {
        self.users.read().unwrap().get(id).cloned()
    }

    pub fn user_by_name(&self, name: &str) -> Option<User> {
        self.users
            .read()
            .unwrap()
            .values()
            .find(|u| u.name == name)
            .cloned()
    }

    /// A user by id or by name.
    pub fn find_user(&self, key: &str) -> Option<User> {
        self.user(key).or_else(|| self.user_by_name(key))
    }

    pub fn users(&self) -> Vec<User> {
        let mut users: Vec<User> = self.users.read().unwrap().values().cloned().collect();
        users.sort_by(|a, b| {
            a.created_at_ms
                .cmp(&b.created_at_ms)
                .then(a.name.cmp(&b.name))
        });
        users
    }

    async fn save_user(&self, user: &User) -> Result<()> {
        let rec = user.to_record();
        self.store.run(move |s| s.put_user(&rec)).await?;
        self.users
            .write()
            .unwrap()
            .insert(user.id.clone(), user.clone());
        Ok(())
    }

    /// The local account's user, made on first use.
    async fn insert_user(&self, name: &str, tier: Tier, admin: bool) -> Result<User> {
        let _w = self.write.lock().await;
        if let Some(u) = self.user_by_name(name) {
            return Ok(u);
        }
        self.save_new_user(name, tier, admin).await
    }

    /// Stores a new user; the caller holds the write lock and found the name free.
    async fn save_new_user(&self, name: &str, tier: Tier, admin: bool) -> Result<User> {
        let user = User {
            id: format!("usr_{}", random_hex(8)),
            name: name.to_string(),
            tier,
            admin,
            created_at_ms: clock::now_ms(),
        };
        self.save_user(&user).await?;
        Ok(user)
    }

    pub async fn create_user(&self, name: &str, tier: Option<&str>) -> Result<User> {
        let name = name.trim();
        if !valid_user_name(name) {
            return Err(Error::BadRequest(
                "invalid user name: must be 1-64 characters of letters, digits, '.', '_' and '-'"
                    .into(),
            ));
        }
        let tier = match tier {
            None => Tier::Free,
            Some(t) => {
                Tier::parse(t).ok_or_else(|| Error::BadRequest(format!("unknown tier {t:?}")))?
            }
        };
        let _w = self.write.lock().await;
        if self.user_by_name(name).is_some() {
            return Err(Error::Conflict {
                message: "user already exists".into(),
                code: "user_exists",
            });
        }
        self.save_new_user(name, tier, false).await
    }

    pub async fn set_tier(&self, id: &str, tier: &str) -> Result<User> {
        let tier =
            Tier::parse(tier).ok_or_else(|| Error::BadRequest(format!("unknown tier {tier:?}")))?;
        let _w = self.write.lock().await;
        let mut user = self.find_user(id).ok_or(Error::NotFound("user"))?;
        user.tier = tier;
        self.save_user(&user).await?;
        Ok(user)
    }

    /// Deletes a user and their tokens. The caller checks they own no containers.
    pub async fn delete_user(&self, id: &str) -> Result<User> {
        let _w = self.write.lock().await;
        let user = self.find_user(id).ok_or(Error::NotFound("user"))?;
        let tokens: Vec<TokenRecord> = self
            .tokens
            .read()
            .unwrap()
            .values()
            .filter(|t| t.user_id == user.id)
            .cloned()
            .collect();
        let uid = user.id.clone();
        self.store
            .run(move |s| {
                for t in &tokens {
                    s.delete_token(&t.id)?;
                }
                s.delete_user(&uid)
            })
            .await?;
        self.tokens
            .write()
            .unwrap()
            .retain(|_, t| t.user_id != user.id);
        self.users.write().unwrap().remove(&user.id);
        Ok(user)
    }
}

/// Shared handle.
pub type SharedAuth = Arc<Auth>;

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeAccounts;
    impl Accounts for FakeAccounts {
        fn name_of(&self, uid: u32) -> Option<String> {
            Some(if uid == 0 {
                "root".into()
            } else {
                format!("u{uid}")
            })
        }
        fn is_admin(&self, uid: u32) -> bool {
            uid == 0
        }
    }

    fn auth() -> (tempfile::TempDir, Auth) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.redb")).unwrap();
        (
            dir,
            Auth::new(store, Box::new(FakeAccounts), Tier::Pro).unwrap(),
        )
    }

    #[tokio::test]
    async fn scopes_gate_reads_writes_and_admin() {
        let (_d, auth) = auth();
        let root = auth
            .authenticate(&Credentials::Peer { uid: 0 })
            .await
            .unwrap();
        assert!(root.is_admin() && root.can_write());
        let ann = auth.create_user("ann", Some("free")).await.unwrap();
        let req = api::CreateTokenRequest {
            name: "ro".into(),
            scopes: Some(vec!["read".into()]),
            expires_in: None,
        };
        let t = auth.create_token(&root, &ann, &req).await.unwrap();
        assert!(t.token.starts_with("rexec_") && t.token.len() == 6 + 64);
        let p = auth
            .authenticate(&Credentials::Bearer(t.token.clone()))
            .await
            .unwrap();
        assert!(p.can_read() && !p.can_write() && !p.is_admin());
        // An admin-scoped token never makes a non-admin an admin.
        let admin_req = api::CreateTokenRequest {
            name: "adm".into(),
            scopes: Some(vec!["admin".into()]),
            expires_in: None,
        };
        assert!(auth.create_token(&root, &ann, &admin_req).await.is_err());
        let ann_p = auth
            .authenticate(&Credentials::Bearer(t.token.clone()))
            .await
            .unwrap();
        assert!(matches!(
            auth.create_token(&ann_p, &root.user, &admin_req).await,
            Err(Error::Forbidden(_))
        ));
        auth.revoke_token(&ann.id, &t.id).await.unwrap();
        assert!(matches!(
            auth.authenticate(&Credentials::Bearer(t.token)).await,
            Err(Error::Unauthorized)
        ));
    }

    #[tokio::test]
    async fn peers_become_users_with_the_local_tier() {
        let (_d, auth) = auth();
        let p = auth
            .authenticate(&Credentials::Peer { uid: 1000 })
            .await
            .unwrap();
        assert_eq!(p.user.name, "u1000");
        assert_eq!(p.user.tier, Tier::Pro);
        assert!(!p.is_admin());
        let again = auth
            .authenticate(&Credentials::Peer { uid: 1000 })
            .await
            .unwrap();
        assert_eq!(again.user.id, p.user.id);
        assert!(matches!(
            auth.authenticate(&Credentials::None).await,
            Err(Error::Unauthorized)
        ));
    }
}
