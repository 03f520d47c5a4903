//! The one place the store's connections are configured: a `postgres://` URL becomes a
//! [`PgConfig`] — tokio-postgres's settings and the TLS every connection uses (the pool,
//! the change feed, migrations, leases, the audit anchor, `migrate-store`'s copy).
//!
//! TLS follows libpq's URL parameters: `sslmode` (`disable`, `prefer` — the default —,
//! `require`, `verify-ca`, `verify-full`) and `sslrootcert` (a PEM CA bundle, or `system`
//! for the system's roots). tokio-postgres knows only `disable`, `prefer` and `require`, and
//! neither `sslrootcert`, so both parameters are taken out of the URL here and the rest is
//! handed to tokio-postgres; the certificate checks are [`super::tls`]'s.

use std::path::PathBuf;
use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig};
use tokio_postgres::{Client, Connection, Socket};

use super::tls::{self, MakeRustls, Roots, RustlsStream, Verify};
use crate::{Result, StoreError};

/// libpq's `sslmode`, as the store applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it (libpq's default); the certificate is not checked
    /// unless `sslrootcert` is given.
    Prefer,
    /// TLS or no connection; the certificate is not checked unless `sslrootcert` is given
    /// (then its chain is, as `verify-ca` does).
    Require,
    /// TLS, the chain checked against `sslrootcert` (or the system's roots).
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => {
                return Err(invalid(
                    "sslmode must be disable, prefer, require, verify-ca or verify-full",
                ));
            }
        })
    }

    /// libpq's name for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// How the store connects to its database: every connection it makes comes from here.
#[derive(Clone)]
pub struct PgConfig {
    config: tokio_postgres::Config,
    ssl_mode: SslMode,
    tls: MakeRustls,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the whole configuration: it may hold a password.
        f.debug_struct("PgConfig")
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

impl PgConfig {
    /// Parses a `postgres://` URL (or a `key=value` connection string, without the
    /// `verify-ca`/`verify-full` modes and `sslrootcert`, which only the URL form takes here)
    /// and reads the CA bundle `sslrootcert` names. The URL (it may hold a password) is never
    /// in the error.
    pub fn parse(url: &str) -> Result<Self> {
        let (config, ssl_mode, roots) = split(url)?;
        let verify = match (ssl_mode, &roots) {
            (SslMode::Disable, _) => None,
            (SslMode::Prefer | SslMode::Require, None) => Some((Verify::Nothing, Roots::System)),
            (SslMode::Prefer | SslMode::Require | SslMode::VerifyCa, Some(roots)) => {
                Some((Verify::Chain, roots.clone()))
            }
            // The system's roots without a host-name check would accept any certificate any
            // public CA issued, for any name: libpq refuses it too (it wants a root file).
            (SslMode::VerifyCa, None) => {
                return Err(invalid(
                    "sslmode=verify-ca needs sslrootcert=PATH (the CA that issued the server's \
                     certificate); with the system's CAs use verify-full",
                ));
            }
            (SslMode::VerifyFull, roots) => {
                Some((Verify::Full, roots.clone().unwrap_or(Roots::System)))
            }
        };
        let client = match verify {
            Some((verify, roots)) => tls::client_config(verify, &roots),
            // Never used (tokio-postgres does not ask for TLS), and reads no file.
            None => tls::client_config(Verify::Nothing, &Roots::System),
        }
        .map_err(|e| invalid(&e))?;
        Ok(Self {
            config,
            ssl_mode,
            tls: MakeRustls::new(client),
        })
    }

    /// The `sslmode` in force.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// tokio-postgres's settings (host, port, database, options...).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// Changes tokio-postgres's settings (the TLS stays as parsed).
    pub fn config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }

    /// Opens one connection (with the TLS `sslmode` asks for); the caller drives the
    /// [`Connection`].
    pub async fn connect(
        &self,
    ) -> std::result::Result<
        (Client, Connection<Socket, RustlsStream<Socket>>),
        tokio_postgres::Error,
    > {
        self.config.connect(self.tls.clone()).await
    }

    /// The pool's connection manager.
    pub(crate) fn manager(&self, manager: ManagerConfig) -> Manager {
        Manager::from_config(self.config.clone(), self.tls.clone(), manager)
    }
}

fn invalid(why: &str) -> StoreError {
    StoreError::Config(format!(
        "the PostgreSQL connection string is invalid: {why}"
    ))
}

/// tokio-postgres's configuration of `url` without the TLS parameters it does not know,
/// and those parameters. Reads no file.
pub(crate) fn split(url: &str) -> Result<(tokio_postgres::Config, SslMode, Option<Roots>)> {
    let mut ssl_mode = None;
    let mut roots = None;
    let rest = match url_query(url) {
        Some(query_start) => {
            let (base, query) = url.split_at(query_start);
            let mut kept = Vec::new();
            for param in query[1..].split('&').filter(|p| !p.is_empty()) {
                let (key, value) = param.split_once('=').unwrap_or((param, ""));
                match decode(key)?.as_str() {
                    "sslmode" => ssl_mode = Some(SslMode::parse(&decode(value)?)?),
                    "sslrootcert" => {
                        let value = decode(value)?;
                        roots = Some(if value == "system" {
                            Roots::System
                        } else if value.is_empty() {
                            return Err(invalid("sslrootcert is empty"));
                        } else {
                            Roots::File(PathBuf::from(value))
                        });
                    }
                    _ => kept.push(param),
                }
            }
            if kept.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        }
        None => url.to_owned(),
    };
    let mut config =
        tokio_postgres::Config::from_str(&rest).map_err(|e| invalid(&super::causes(&e)))?;
    let ssl_mode = match ssl_mode {
        Some(mode) => mode,
        // sslrootcert=system: libpq's default becomes verify-full, and weaker modes are refused.
        None if roots == Some(Roots::System) => SslMode::VerifyFull,
        // What tokio-postgres read (a key=value string), else libpq's default.
        None => match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        },
    };
    if roots == Some(Roots::System) && ssl_mode != SslMode::VerifyFull {
        return Err(invalid(&format!(
            "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
            ssl_mode.as_str()
        )));
    }
    config.ssl_mode(match ssl_mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    Ok((config, ssl_mode, roots))
}

/// Where the query (`?...`) of a `postgres://` URL starts, as tokio-postgres reads it: the
/// user and password end at the first `@`, the query starts at the first `?` after them.
fn url_query(url: &str) -> Option<usize> {
    let prefix = ["postgres://", "postgresql://"]
        .iter()
        .find(|p| url.starts_with(*p))?
        .len();
    let after_credentials = url[prefix..].find('@').map_or(prefix, |at| prefix + at + 1);
    url[after_credentials..]
        .find('?')
        .map(|q| after_credentials + q)
}

/// Percent-decodes a URL parameter.
fn decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid("a parameter is not UTF-8"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn modes(url: &str) -> (SslMode, Option<Roots>, tokio_postgres::config::SslMode) {
        let (config, mode, roots) = split(url).unwrap();
        (mode, roots, config.get_ssl_mode())
    }

    #[test]
    fn libpq_modes_are_taken_out_of_the_url() {
        use tokio_postgres::config::SslMode as Tp;
        assert_eq!(
            modes("postgres://u:p@h:5432/db"),
            (SslMode::Prefer, None, Tp::Prefer)
        );
        assert_eq!(
            modes("postgres://u@h/db?sslmode=disable"),
            (SslMode::Disable, None, Tp::Disable)
        );
        assert_eq!(
            modes(
                "postgresql://u@h/db?application_name=x&sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem"
            ),
            (
                SslMode::VerifyCa,
                Some(Roots::File("/etc/ca.pem".into())),
                Tp::Require
            )
        );
        assert_eq!(
            modes("postgres://u@h/db?sslmode=verify-full&options=-c%20search_path%3Ds"),
            (SslMode::VerifyFull, None, Tp::Require)
        );
        assert_eq!(
            modes("postgres://u@h/db?sslrootcert=system"),
            (SslMode::VerifyFull, Some(Roots::System), Tp::Require)
        );
        let (config, ..) = split("postgres://u@h/db?sslmode=require&options=-c%20x%3Dy").unwrap();
        assert_eq!(config.get_options(), Some("-c x=y"));
        assert_eq!(config.get_dbname(), Some("db"));
        // A `?` in the password is not the query.
        let (config, mode, _) = split("postgres://u:p?w@h/db?sslmode=verify-full").unwrap();
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(config.get_password(), Some(&b"p?w"[..]));
    }

    #[test]
    fn bad_tls_parameters_are_refused_without_the_url() {
        for url in [
            "postgres://u:secret@h/db?sslmode=allow",
            "postgres://u:secret@h/db?sslmode=require&sslrootcert=system",
            "postgres://u:secret@h/db?sslrootcert=",
        ] {
            let e = split(url).unwrap_err().to_string();
            assert!(!e.contains("secret"), "{e}");
            assert!(e.contains("ssl"), "{e}");
        }
        let e = PgConfig::parse(
            "postgres://u:secret@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/nonexistent/ca.pem") && !e.contains("secret"),
            "{e}"
        );
        // verify-ca against the system's roots, no name check: any public certificate.
        let e = PgConfig::parse("postgres://u:secret@h/db?sslmode=verify-ca")
            .expect_err("verify-ca without sslrootcert is refused")
            .to_string();
        assert!(e.contains("sslrootcert") && !e.contains("secret"), "{e}");
    }
}
