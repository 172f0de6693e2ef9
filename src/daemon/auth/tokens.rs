//! API tokens: `rexec_` + 32 random bytes in hex, stored only as SHA-256 hashes.

use sha2::{Digest, Sha256};

use super::{random_hex, Auth, Principal, Scope, User};
use crate::api;
use crate::daemon::clock;
use crate::daemon::error::{Error, Result};
use crate::daemon::store::TokenRecord;

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(super) fn parse_scopes(scopes: Option<&[String]>) -> Result<Vec<Scope>> {
    let Some(scopes) = scopes else {
        return Ok(vec![Scope::Read, Scope::Write]);
    };
    let mut out = Vec::new();
    for s in scopes {
        let scope = Scope::parse(s).ok_or_else(|| {
            Error::BadRequest(format!("invalid scope {s:?}: use read, write or admin"))
        })?;
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    if out.is_empty() {
        return Err(Error::BadRequest("scopes must not be empty".into()));
    }
    out.sort();
    Ok(out)
}

impl Auth {
    /// Records a token's use, on the current record (a revoke may have happened meanwhile).
    pub(super) async fn touch(&self, hash: &str, now: i64) -> Result<()> {
        let _w = self.write.lock().await;
        let Some(mut token) = self.tokens.read().unwrap().get(hash).cloned() else {
            return Ok(());
        };
        token.last_used_at_ms = Some(now);
        let stored = token.clone();
        self.store.run(move |s| s.touch_token(&stored)).await?;
        self.tokens.write().unwrap().insert(hash.to_string(), token);
        Ok(())
    }

    /// Creates a token for `owner`. Only an admin caller may ask for the `admin` scope, and
    /// only for an admin user.
    pub async fn create_token(
        &self,
        caller: &Principal,
        owner: &User,
        req: &api::CreateTokenRequest,
    ) -> Result<api::CreatedToken> {
        let name = req.name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(Error::BadRequest(
                "token name must be 1-128 characters".into(),
            ));
        }
        let scopes = parse_scopes(req.scopes.as_deref())?;
        if req.expires_in == Some(0) {
            return Err(Error::BadRequest(
                "expires_in must be at least 1 (days)".into(),
            ));
        }
        if scopes.contains(&Scope::Admin) {
            caller.require_admin()?;
            if !owner.admin {
                return Err(Error::BadRequest(
                    "the admin scope is only for admin users".into(),
                ));
            }
        }
        let token = format!("rexec_{}", random_hex(32));
        let now = clock::now_ms();
        let record = TokenRecord {
            id: format!("tok_{}", random_hex(8)),
            user_id: owner.id.clone(),
            name: name.to_string(),
            hash: hash_token(&token),
            prefix: token[..14].to_string(),
            scopes: scopes.iter().map(|s| s.as_str().to_string()).collect(),
            created_at_ms: now,
            last_used_at_ms: None,
            expires_at_ms: req.expires_in.map(|d| now + i64::from(d) * 86_400_000),
            revoked_at_ms: None,
        };
        let stored = record.clone();
        self.store.run(move |s| s.put_token(&stored)).await?;
        self.tokens
            .write()
            .unwrap()
            .insert(record.hash.clone(), record.clone());
        Ok(api::CreatedToken {
            id: record.id,
            name: record.name,
            token,
            token_prefix: record.prefix,
            scopes: record.scopes,
            created_at: clock::rfc3339(now),
            expires_at: record.expires_at_ms.map(clock::rfc3339),
        })
    }

    pub fn tokens_of(&self, user_id: &str) -> Vec<api::TokenInfo> {
        let mut tokens: Vec<TokenRecord> = self
            .tokens
            .read()
            .unwrap()
            .values()
            .filter(|t| t.user_id == user_id)
            .cloned()
            .collect();
        tokens.sort_by_key(|t| std::cmp::Reverse(t.created_at_ms));
        tokens
            .into_iter()
            .map(|t| api::TokenInfo {
                id: t.id,
                name: t.name,
                token_prefix: t.prefix,
                scopes: t.scopes,
                created_at: clock::rfc3339(t.created_at_ms),
                last_used_at: t.last_used_at_ms.map(clock::rfc3339),
                expires_at: t.expires_at_ms.map(clock::rfc3339),
                revoked_at: t.revoked_at_ms.map(clock::rfc3339),
            })
            .collect()
    }

    fn token_of(&self, user_id: &str, id: &str) -> Option<TokenRecord> {
        self.tokens
            .read()
            .unwrap()
            .values()
            .find(|t| t.id == id && t.user_id == user_id)
            .cloned()
    }

    pub async fn revoke_token(&self, user_id: &str, id: &str) -> Result<()> {
        let _w = self.write.lock().await;
        let mut t = self.token_of(user_id, id).ok_or(Error::NotFound("token"))?;
        if t.revoked_at_ms.is_none() {
            t.revoked_at_ms = Some(clock::now_ms());
            let stored = t.clone();
            self.store.run(move |s| s.put_token(&stored)).await?;
            self.tokens.write().unwrap().insert(t.hash.clone(), t);
        }
        Ok(())
    }

    pub async fn delete_token(&self, user_id: &str, id: &str) -> Result<()> {
        let _w = self.write.lock().await;
        let t = self.token_of(user_id, id).ok_or(Error::NotFound("token"))?;
        let tid = t.id.clone();
        self.store.run(move |s| s.delete_token(&tid)).await?;
        self.tokens.write().unwrap().remove(&t.hash);
        Ok(())
    }

    pub fn scopes_of(p: &Principal) -> Vec<String> {
        p.scopes.iter().map(|s| s.as_str().to_string()).collect()
    }
}
