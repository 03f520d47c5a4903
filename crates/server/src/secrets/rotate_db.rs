//! The database side of the built-in rotators: logging in with a secret's credentials and
//! changing passwords, on PostgreSQL (tokio-postgres) and MySQL/MariaDB (mysql_async).
//!
//! Passwords travel as SQL string literals, since `ALTER USER` / `SET PASSWORD` take no bind
//! parameters: PostgreSQL quotes them itself (`quote_literal`, and `quote_ident` for role
//! names, as AWS's functions do), MySQL literals are escaped here for the session's
//! `sql_mode`. A password never reaches an error or the log; statements holding one are
//! zeroized after use.
//!
//! Connections are made without TLS (see docs/secrets-manager.md): a secret whose `ssl` is
//! `true` is refused rather than silently sent in the clear.

use std::time::Duration;

use zeroize::Zeroizing;

use super::rotate_builtin::DbSecret;

/// How long a login may take, as AWS's functions' `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The database a rotator speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flavor {
    Postgres,
    Mysql,
}

impl Flavor {
    fn default_port(self) -> u16 {
        match self {
            Flavor::Postgres => 5432,
            Flavor::Mysql => 3306,
        }
    }
}

/// An open, authenticated connection.
pub(super) enum Conn {
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
}

/// Logs in with `secret`'s host, port, user name, password and database. `Err` says why
/// not (never with the password).
pub(super) async fn connect(flavor: Flavor, secret: &DbSecret) -> Result<Conn, String> {
    if secret.requires_tls() {
        return Err(
            "the secret asks for TLS (\"ssl\": true), which Keyhold's built-in rotators do not \
             support yet"
                .to_owned(),
        );
    }
    let host = secret.str_field("host").unwrap_or_default();
    let user = secret.str_field("username").unwrap_or_default();
    let port = secret.port()?.unwrap_or(flavor.default_port());
    let login = match flavor {
        Flavor::Postgres => {
            tokio::time::timeout(CONNECT_TIMEOUT, connect_postgres(secret, host, port, user)).await
        }
        Flavor::Mysql => {
            tokio::time::timeout(CONNECT_TIMEOUT, connect_mysql(secret, host, port, user)).await
        }
    };
    match login {
        Ok(result) => result.map_err(|e| format!("logging in to {host}:{port} as {user}: {e}")),
        Err(_) => Err(format!("logging in to {host}:{port} as {user} timed out")),
    }
}

async fn connect_postgres(
    secret: &DbSecret,
    host: &str,
    port: u16,
    user: &str,
) -> Result<Conn, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user(user)
        .password(secret.password().as_bytes())
        .dbname(secret.str_field("dbname").unwrap_or("postgres"))
        .connect_timeout(CONNECT_TIMEOUT)
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // Ends when the client is dropped.
        let _ = connection.await;
    });
    Ok(Conn::Postgres(client))
}

async fn connect_mysql(
    secret: &DbSecret,
    host: &str,
    port: u16,
    user: &str,
) -> Result<Conn, String> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(secret.password()))
        .db_name(secret.str_field("dbname"))
        .prefer_socket(false);
    mysql_async::Conn::new(opts)
        .await
        .map(Conn::Mysql)
        .map_err(|e| e.to_string())
}

impl Conn {
    /// The check AWS's functions make after logging in with the pending secret.
    pub(super) async fn select_now(&mut self) -> Result<(), String> {
        match self {
            Conn::Postgres(client) => client
                .simple_query("SELECT NOW()")
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Conn::Mysql(conn) => {
                use mysql_async::prelude::Queryable;
                conn.query_drop("SELECT NOW()")
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Single user: the logged-in user changes its own password.
    pub(super) async fn set_own_password(
        &mut self,
        username: &str,
        password: &str,
    ) -> Result<(), String> {
        check_password(password)?;
        match self {
            Conn::Postgres(client) => {
                let (ident, literal) = pg_quote(client, username, password).await?;
                let alter =
                    Zeroizing::new(format!("ALTER USER {ident} WITH PASSWORD {}", *literal));
                client
                    .batch_execute(&alter)
                    .await
                    .map_err(|e| format!("changing the password of {username}: {e}"))
            }
            Conn::Mysql(conn) => {
                let server = MysqlServer::probe(conn).await?;
                let set = Zeroizing::new(format!(
                    "SET PASSWORD = {}",
                    *server.password_expression(password)
                ));
                run_mysql(conn, &set)
                    .await
                    .map_err(|e| format!("changing the password of {username}: {e}"))
            }
        }
    }

    /// Alternating users, logged in as the master user: gives `pending_user` the password,
    /// creating it as a clone of `current_user` (its grants) when it does not exist.
    pub(super) async fn set_alternate_password(
        &mut self,
        current_user: &str,
        pending_user: &str,
        password: &str,
    ) -> Result<(), String> {
        check_password(password)?;
        match self {
            Conn::Postgres(client) => {
                let (pending, literal) = pg_quote(client, pending_user, password).await?;
                let current = client
                    .query_one("SELECT quote_ident($1)", &[&current_user])
                    .await
                    .map_err(|e| e.to_string())?
                    .try_get::<_, String>(0)
                    .map_err(|e| e.to_string())?;
                let exists = !client
                    .query(
                        "SELECT 1 FROM pg_roles WHERE rolname = $1",
                        &[&pending_user],
                    )
                    .await
                    .map_err(|e| e.to_string())?
                    .is_empty();
                let statements = Zeroizing::new(if exists {
                    format!(
                        "BEGIN; ALTER USER {pending} WITH PASSWORD {}; COMMIT",
                        *literal
                    )
                } else {
                    format!(
                        "BEGIN; CREATE ROLE {pending} WITH LOGIN PASSWORD {}; \
                         GRANT {current} TO {pending}; COMMIT",
                        *literal
                    )
                });
                let done = client.batch_execute(&statements).await;
                if done.is_err() {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                done.map_err(|e| format!("setting the password of {pending_user}: {e}"))
            }
            Conn::Mysql(conn) => mysql_clone(conn, current_user, pending_user, password).await,
        }
    }

    pub(super) async fn close(self) {
        match self {
            Conn::Postgres(client) => drop(client),
            Conn::Mysql(conn) => {
                let _ = conn.disconnect().await;
            }
        }
    }
}

/// Refuses a password no database can hold (generated ones never are).
fn check_password(password: &str) -> Result<(), String> {
    if password.contains('\0') {
        return Err("the pending password contains a NUL character".to_owned());
    }
    Ok(())
}

/// The role name as an identifier and the password as a literal, quoted by the server.
async fn pg_quote(
    client: &tokio_postgres::Client,
    username: &str,
    password: &str,
) -> Result<(String, Zeroizing<String>), String> {
    let row = client
        .query_one(
            "SELECT quote_ident($1), quote_literal($2)",
            &[&username, &password],
        )
        .await
        .map_err(|e| e.to_string())?;
    let ident: String = row.try_get(0).map_err(|e| e.to_string())?;
    let literal: String = row.try_get(1).map_err(|e| e.to_string())?;
    Ok((ident, Zeroizing::new(literal)))
}

/// What the statements depend on: the server's kind and version, and whether backslashes
/// escape in string literals.
struct MysqlServer {
    /// MySQL 8 and later take `SET PASSWORD = 'text'`; earlier ones and MariaDB `PASSWORD('text')`.
    plain_password: bool,
    no_backslash_escapes: bool,
    /// MySQL 5.6 sets TLS requirements with GRANT USAGE, later ones with ALTER USER.
    mysql56: bool,
}

impl MysqlServer {
    async fn probe(conn: &mut mysql_async::Conn) -> Result<Self, String> {
        use mysql_async::prelude::Queryable;
        let row: Option<(String, String)> = conn
            .query_first("SELECT VERSION(), @@SESSION.sql_mode")
            .await
            .map_err(|e| e.to_string())?;
        let (version, sql_mode) = row.unwrap_or_default();
        let mariadb = version.to_ascii_lowercase().contains("mariadb");
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        Ok(Self {
            plain_password: !mariadb && major >= 8,
            no_backslash_escapes: sql_mode.contains("NO_BACKSLASH_ESCAPES"),
            mysql56: !mariadb && version.starts_with("5.6"),
        })
    }

    fn literal(&self, text: &str) -> Zeroizing<String> {
        mysql_literal(text, self.no_backslash_escapes)
    }

    fn password_expression(&self, password: &str) -> Zeroizing<String> {
        let literal = self.literal(password);
        if self.plain_password {
            literal
        } else {
            Zeroizing::new(format!("PASSWORD({})", *literal))
        }
    }
}

/// A MySQL string literal of `text` (which holds no NUL).
fn mysql_literal(text: &str, no_backslash_escapes: bool) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(text.len() * 2 + 2));
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if !no_backslash_escapes => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

async fn run_mysql(conn: &mut mysql_async::Conn, statement: &str) -> Result<(), String> {
    use mysql_async::prelude::Queryable;
    conn.query_drop(statement).await.map_err(|e| e.to_string())
}

/// A user's `ssl_type`, `ssl_cipher`, `x509_issuer` and `x509_subject` (mysql.user).
type TlsRequirements = (String, Vec<u8>, Vec<u8>, Vec<u8>);

/// AWS's MySQL alternating-users setSecret, as the master user: create the clone if
/// missing, copy the current user's grants and TLS requirements to it, set its password.
async fn mysql_clone(
    conn: &mut mysql_async::Conn,
    current_user: &str,
    pending_user: &str,
    password: &str,
) -> Result<(), String> {
    use mysql_async::prelude::Queryable;
    let server = MysqlServer::probe(conn).await?;
    let pending = server.literal(pending_user);
    let current = server.literal(current_user);
    let fail = |what: &str, e: String| format!("{what} for {pending_user}: {e}");
    let exists: Option<String> = conn
        .exec_first(
            "SELECT User FROM mysql.user WHERE User = ?",
            (pending_user,),
        )
        .await
        .map_err(|e| fail("looking up the user", e.to_string()))?;
    if exists.is_none() {
        let create = Zeroizing::new(format!(
            "CREATE USER {} IDENTIFIED BY {}",
            *pending,
            *server.literal(password)
        ));
        run_mysql(conn, &create)
            .await
            .map_err(|e| fail("creating the user", e))?;
    }
    let grants: Vec<String> = conn
        .query(format!("SHOW GRANTS FOR {}", *current))
        .await
        .map_err(|e| fail("reading the grants to copy", e.to_string()))?;
    for grant in grants {
        let head = grant.split(" TO ").next().unwrap_or_default();
        run_mysql(conn, &format!("{head} TO {}", *pending))
            .await
            .map_err(|e| fail("copying a grant", e))?;
    }
    let tls: Option<TlsRequirements> = conn
        .exec_first(
            "SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject FROM mysql.user \
             WHERE User = ?",
            (current_user,),
        )
        .await
        .map_err(|e| fail("reading the TLS requirements to copy", e.to_string()))?;
    let require = if server.mysql56 {
        format!("GRANT USAGE ON *.* TO {}@'%' REQUIRE", *pending)
    } else {
        format!("ALTER USER {}@'%' REQUIRE", *pending)
    };
    let require = tls.map(
        |(ssl_type, cipher, issuer, subject)| match ssl_type.as_str() {
            "" => format!("{require} NONE"),
            "ANY" => format!("{require} SSL"),
            "X509" => format!("{require} X509"),
            _ => format!(
                "{require} CIPHER {} AND ISSUER {} AND SUBJECT {}",
                *server.literal(&String::from_utf8_lossy(&cipher)),
                *server.literal(&String::from_utf8_lossy(&issuer)),
                *server.literal(&String::from_utf8_lossy(&subject)),
            ),
        },
    );
    if let Some(require) = require {
        run_mysql(conn, &require)
            .await
            .map_err(|e| fail("copying the TLS requirements", e))?;
    }
    let set = Zeroizing::new(format!(
        "SET PASSWORD FOR {} = {}",
        *pending,
        *server.password_expression(password)
    ));
    run_mysql(conn, &set)
        .await
        .map_err(|e| fail("setting the password", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_literals_escape_for_the_sql_mode() {
        assert_eq!(*mysql_literal("a'b\\c", false), "'a''b\\\\c'");
        assert_eq!(*mysql_literal("a'b\\c", true), "'a''b\\c'");
        assert_eq!(*mysql_literal("plain", false), "'plain'");
    }

    #[test]
    fn nul_is_refused() {
        assert!(check_password("a\0b").is_err());
        assert!(check_password("ok").is_ok());
    }
}
