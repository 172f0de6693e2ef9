//! Local accounts behind Unix-socket peer credentials.

use std::collections::HashMap;

/// Local-account facts the daemon needs for peer identity.
pub trait Accounts: Send + Sync {
    fn name_of(&self, uid: u32) -> Option<String>;
    fn is_admin(&self, uid: u32) -> bool;
}

/// The host's accounts, through NSS, remembered for [`ACCOUNT_TTL`].
pub struct SystemAccounts {
    admin_group: String,
    cache: std::sync::Mutex<HashMap<u32, CachedAccount>>,
}

/// When it was looked up, the account name, whether it is an admin.
type CachedAccount = (std::time::Instant, Option<String>, bool);

/// How long a looked-up account is trusted: each lookup reads /etc/passwd and /etc/group, and
/// every request over the socket needs one. An admin-group change shows within this.
const ACCOUNT_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl SystemAccounts {
    pub fn new(admin_group: String) -> Self {
        Self {
            admin_group,
            cache: Default::default(),
        }
    }

    fn lookup(&self, uid: u32) -> (Option<String>, bool) {
        if let Some((at, name, admin)) = self.cache.lock().unwrap().get(&uid) {
            if at.elapsed() < ACCOUNT_TTL {
                return (name.clone(), *admin);
            }
        }
        let name = nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.name);
        let admin = self.admin_uncached(uid);
        self.cache
            .lock()
            .unwrap()
            .insert(uid, (std::time::Instant::now(), name.clone(), admin));
        (name, admin)
    }

    fn admin_uncached(&self, uid: u32) -> bool {
        if uid == 0 {
            return true;
        }
        let Some(user) = nix::unistd::User::from_uid(uid.into()).ok().flatten() else {
            return false;
        };
        let Some(group) = nix::unistd::Group::from_name(&self.admin_group)
            .ok()
            .flatten()
        else {
            return false;
        };
        group.gid == user.gid || group.mem.contains(&user.name)
    }
}

impl Accounts for SystemAccounts {
    fn name_of(&self, uid: u32) -> Option<String> {
        self.lookup(uid).0
    }

    fn is_admin(&self, uid: u32) -> bool {
        self.lookup(uid).1
    }
}
