//! The set-up catalog: roles, tools and shell options as data (`roles.toml`), read and checked
//! once at start-up. Nothing here runs anything; `script` turns a tool into a step script.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::api;

/// The built-in catalog.
pub const BUILTIN: &str = include_str!("roles.toml");

/// A package-manager family, as the image probe reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Apt,
    Apk,
    Pacman,
    /// No package manager rexec knows.
    None,
}

impl Family {
    pub const INSTALLABLE: [Family; 3] = [Family::Apt, Family::Apk, Family::Pacman];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Apt => "apt",
            Family::Apk => "apk",
            Family::Pacman => "pacman",
            Family::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        [Family::Apt, Family::Apk, Family::Pacman, Family::None]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub tools: Vec<String>,
    /// `barebone`: no set-up at all, shell options included.
    #[serde(default)]
    pub skip_setup: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub check: String,
    #[serde(default)]
    pub packages: BTreeMap<Family, Vec<String>>,
    #[serde(default)]
    pub install: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub configure: Option<String>,
}

/// Which tool each shell option sets up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellTools {
    pub base: String,
    pub enhanced: String,
    pub autosuggestions: String,
    pub syntax_highlight: String,
    pub history_search: String,
    pub git_aliases: String,
    pub system_stats: String,
    pub use_tmux: String,
    /// `(theme name, tool)`, the default first.
    pub themes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    roles: Vec<Role>,
    shell: ShellTools,
    tools: BTreeMap<String, Tool>,
}

#[derive(Debug, Clone)]
pub struct SetupCatalog {
    roles: Vec<Role>,
    tools: BTreeMap<String, Tool>,
    pub shell: ShellTools,
}

/// Tool and role names end up in file names and messages: keep them plain.
fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Package names are spliced into scripts: only what distro package names use.
fn package_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._".contains(&b))
}

impl SetupCatalog {
    pub fn builtin() -> Self {
        Self::parse(BUILTIN).expect("the built-in roles.toml is valid (unit-tested)")
    }

    /// Reads and checks a catalog: every name plain, every tool a role or option names
    /// defined, every package name plain, every tool installable or checkable.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, tool) in &file.tools {
            if !plain_name(name) {
                return Err(format!("tool name {name:?}: use a-z, 0-9, '-' and '_'"));
            }
            if tool.check.trim().is_empty() {
                return Err(format!("tool {name}: `check` is empty"));
            }
            for (family, packages) in &tool.packages {
                if *family == Family::None {
                    return Err(format!("tool {name}: `none` cannot have packages"));
                }
                if let Some(bad) = packages.iter().find(|p| !package_name(p)) {
                    return Err(format!("tool {name}: bad package name {bad:?}"));
                }
            }
        }
        let known = |t: &str| -> Result<(), String> {
            if file.tools.contains_key(t) {
                Ok(())
            } else {
                Err(format!("unknown tool {t:?}"))
            }
        };
        let mut seen = Vec::new();
        for role in &file.roles {
            if !plain_name(&role.name) || seen.contains(&role.name) {
                return Err(format!("role name {:?}: not plain or twice", role.name));
            }
            seen.push(role.name.clone());
            role.tools
                .iter()
                .try_for_each(|t| known(t))
                .map_err(|e| format!("role {}: {e}", role.name))?;
        }
        let s = &file.shell;
        for t in [
            &s.base,
            &s.enhanced,
            &s.autosuggestions,
            &s.syntax_highlight,
            &s.history_search,
            &s.git_aliases,
            &s.system_stats,
            &s.use_tmux,
        ] {
            known(t).map_err(|e| format!("[shell]: {e}"))?;
        }
        if s.themes.is_empty() {
            return Err("[shell] themes: at least one theme".into());
        }
        for (theme, tool) in &s.themes {
            if !plain_name(theme) {
                return Err(format!("theme name {theme:?} is not plain"));
            }
            known(tool).map_err(|e| format!("theme {theme}: {e}"))?;
        }
        Ok(Self {
            roles: file.roles,
            tools: file.tools,
            shell: file.shell,
        })
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.name.clone()).collect()
    }

    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.get(name)
    }

    pub fn tools(&self) -> impl Iterator<Item = (&String, &Tool)> {
        self.tools.iter()
    }

    /// The tool of a theme; the default theme when `None`.
    pub fn theme_tool(&self, theme: Option<&str>) -> Option<&str> {
        let themes = &self.shell.themes;
        match theme {
            None => themes.first(),
            Some(t) => themes.iter().find(|(name, _)| name == t),
        }
        .map(|(_, tool)| tool.as_str())
    }

    pub fn theme_names(&self) -> Vec<String> {
        self.shell.themes.iter().map(|(n, _)| n.clone()).collect()
    }

    /// `GET /api/roles`.
    pub fn role_list(&self) -> api::RoleList {
        api::RoleList {
            roles: self
                .roles
                .iter()
                .map(|r| api::RoleInfo {
                    name: r.name.clone(),
                    description: r.description.clone(),
                    tools: r.tools.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_is_valid_and_has_the_documented_roles() {
        let c = SetupCatalog::parse(BUILTIN).unwrap();
        assert_eq!(
            c.role_names(),
            ["node", "python", "go", "rust", "devops", "barebone"]
        );
        assert!(c.role("barebone").unwrap().skip_setup);
        assert_eq!(c.role("node").unwrap().tools, ["npm", "yarn", "nvm"]);
        assert_eq!(c.theme_names(), ["rexec", "minimal", "powerlevel10k"]);
        assert_eq!(c.theme_tool(None), Some("theme-rexec"));
        assert_eq!(c.theme_tool(Some("nope")), None);
        // Every tool can be had on every family, or is only configured.
        for (name, tool) in c.tools() {
            for f in Family::INSTALLABLE {
                assert!(
                    tool.packages.contains_key(&f)
                        || tool.install.is_some()
                        || tool.check == "true",
                    "{name} has no way in on {f}"
                );
            }
        }
    }

    #[test]
    fn bad_catalogs_are_refused_with_a_reason() {
        let base = BUILTIN.to_string();
        let unknown = base.replace("tools = [\"go\"]", "tools = [\"go\", \"fortran\"]");
        assert!(SetupCatalog::parse(&unknown)
            .unwrap_err()
            .contains("unknown tool \"fortran\""));
        let bad_pkg = base.replace("apt = [\"golang-go\"]", "apt = [\"go; rm -rf /\"]");
        assert!(SetupCatalog::parse(&bad_pkg)
            .unwrap_err()
            .contains("bad package name"));
        assert!(SetupCatalog::parse("roles = 3").is_err());
    }
}
