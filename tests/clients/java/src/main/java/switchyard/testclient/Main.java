/*
 * sy-java-client: a real JDBC client (MariaDB Connector/J, MySQL Connector/J or Microsoft's mssql-jdbc, optionally
 * behind HikariCP)
 * driven one JSON command per line on stdin, one JSON reply per line on stdout (tests/clients/README.md;
 * tests/integration/clients.py drives it). It holds N connections: one from the driver itself, or N checked
 * out of a Hikari pool and pinned, so a test decides which connection each command runs on. It does not retry
 * or reconnect by itself; `recycle` closes a connection (back to the pool) and gets another.
 */
package switchyard.testclient;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

public final class Main {
    /** A command line mistake or a malformed command: a test bug, not an SQL error (clients.py raises). */
    static final class UsageError extends Exception {
        private static final long serialVersionUID = 1L;

        UsageError(String msg) {
            super(msg);
        }
    }

    /** One held connection and the prepared statements open on it (they die with it). */
    static final class Held {
        Connection conn;
        final Map<String, PreparedStatement> stmts = new HashMap<>();
    }

    private String driverName = "mariadb";
    private String url;
    private String user;
    private String password;
    private int pool;                      // 0: one connection from the driver; N: N pinned out of Hikari
    private String initSql;
    private Driver driver;
    private HikariDataSource ds;
    private Held[] held;

    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        Main m = new Main();
        try {
            m.parseArgs(args);
        } catch (UsageError e) {
            out.println(Json.write(usage(e.getMessage())));
            out.flush();
            System.exit(2);
        }
        Map<String, Object> ready = m.open();
        out.println(Json.write(ready));
        out.flush();
        if (ready.get("ok") != Boolean.TRUE) {
            m.closeAll();
            System.exit(1);
        }
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            Map<String, Object> reply;
            boolean close = false;
            try {
                Object parsed = Json.parse(line);
                if (!(parsed instanceof Map)) {
                    throw new UsageError("a command is a JSON object");
                }
                @SuppressWarnings("unchecked")
                Map<String, Object> cmd = (Map<String, Object>) parsed;
                close = "close".equals(cmd.get("op"));
                reply = close ? ok() : m.run(cmd);
            } catch (UsageError e) {
                reply = usage(e.getMessage());
            } catch (SQLException e) {
                reply = error(e);
            } catch (RuntimeException e) {         // a driver bug or our own: report it, keep serving
                reply = error(e);
            }
            if (close) {
                m.closeAll();
            }
            out.println(Json.write(reply));
            out.flush();
            if (close) {
                System.exit(0);
            }
        }
        m.closeAll();
        System.exit(0);
    }

    private void parseArgs(String[] args) throws UsageError {
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) {
                throw new UsageError("option " + a + " needs a value");
            }
            String v = args[++i];
            switch (a) {
                case "--driver": driverName = v; break;
                case "--url": url = v; break;
                case "--user": user = v; break;
                case "--password": password = v; break;
                case "--pool":
                    try {
                        pool = Integer.parseInt(v);
                    } catch (NumberFormatException e) {
                        throw new UsageError("--pool needs a number, not " + v);
                    }
                    break;
                case "--init-sql": initSql = v; break;
                default: throw new UsageError("unknown option " + a);
            }
        }
        if (url == null) {
            throw new UsageError("need --url jdbc:mariadb://..., jdbc:mysql://... or jdbc:sqlserver://...");
        }
        if (!driverName.equals("mariadb") && !driverName.equals("mysql") && !driverName.equals("mssql")) {
            throw new UsageError("--driver is mariadb, mysql or mssql, not " + driverName);
        }
        if (pool < 0) {
            throw new UsageError("--pool is 0 (a single connection) or a pool size");
        }
    }

    private String driverClass() {
        switch (driverName) {
            case "mariadb": return "org.mariadb.jdbc.Driver";
            case "mssql": return "com.microsoft.sqlserver.jdbc.SQLServerDriver";
            default: return "com.mysql.cj.jdbc.Driver";
        }
    }

    /** Connects (or fills the pool) and answers the ready line. */
    private Map<String, Object> open() {
        try {
            held = new Held[Math.max(pool, 1)];
            if (pool > 0) {
                HikariConfig cfg = new HikariConfig();
                cfg.setDriverClassName(driverClass());
                cfg.setJdbcUrl(url);
                cfg.setUsername(user);
                cfg.setPassword(password);
                cfg.setMaximumPoolSize(pool);
                cfg.setMinimumIdle(pool);
                cfg.setConnectionTimeout(10_000);
                cfg.setPoolName("sy-test");
                if (initSql != null) {
                    cfg.setConnectionInitSql(initSql);
                }
                ds = new HikariDataSource(cfg);
            } else {
                driver = (Driver) Class.forName(driverClass()).getDeclaredConstructor().newInstance();
            }
            for (int i = 0; i < held.length; i++) {
                checkout(i);
            }
            Connection c = held[0].conn;
            Map<String, Object> r = ok();
            r.put("ready", true);
            r.put("client", c.getMetaData().getDriverName() + (pool > 0 ? " + HikariCP" : ""));
            r.put("driver_version", c.getMetaData().getDriverVersion());
            r.put("server_version", c.getMetaData().getDatabaseProductVersion());
            r.put("conns", held.length);
            return r;
        } catch (SQLException | RuntimeException e) {
            Map<String, Object> r = error(e);
            r.put("ready", false);
            return r;
        } catch (ReflectiveOperationException e) {
            Map<String, Object> r = usage("cannot load " + driverClass() + ": " + e);
            r.put("ready", false);
            return r;
        }
    }

    private void checkout(int i) throws SQLException {
        Held h = new Held();
        if (ds != null) {
            h.conn = ds.getConnection();            // Hikari ran connectionInitSql when it made the connection
        } else {
            Properties p = new Properties();
            if (user != null) {
                p.setProperty("user", user);
            }
            if (password != null) {
                p.setProperty("password", password);
            }
            h.conn = driver.connect(url, p);
            if (h.conn == null) {
                throw new SQLException(driverClass() + " does not accept the URL " + url);
            }
            if (initSql != null) {
                try (Statement s = h.conn.createStatement()) {
                    s.execute(initSql);
                }
            }
        }
        held[i] = h;
    }

    private void release(Held h) {
        if (h == null) {
            return;
        }
        for (PreparedStatement ps : h.stmts.values()) {
            try {
                ps.close();
            } catch (SQLException | RuntimeException ignored) {
                // the connection may already be gone
            }
        }
        try {
            h.conn.close();                         // with Hikari: back to the pool (rollback, reset)
        } catch (SQLException | RuntimeException ignored) {
            // same
        }
    }

    private void closeAll() {
        if (held != null) {
            for (int i = 0; i < held.length; i++) {
                release(held[i]);
                held[i] = null;
            }
        }
        if (ds != null) {
            ds.close();
        }
    }

    private Map<String, Object> run(Map<String, Object> cmd) throws UsageError, SQLException {
        String op = str(cmd, "op", true);
        int ci = cmd.containsKey("conn") ? num(cmd.get("conn")).intValue() : 0;
        if (ci < 0 || ci >= held.length) {
            throw new UsageError("conn " + ci + " out of range (0.." + (held.length - 1) + ")");
        }
        Held h = held[ci];
        if (h == null && !op.equals("recycle")) {
            throw new UsageError("conn " + ci + " is not checked out (a failed recycle?)");
        }
        switch (op) {
            case "query":
            case "exec": {
                try (Statement s = h.conn.createStatement()) {
                    boolean hasRows = s.execute(str(cmd, "sql", true));
                    return op.equals("query") || hasRows ? result(s, hasRows) : affected(s.getLargeUpdateCount());
                }
            }
            case "ping":
                if (h.conn.isValid(10)) {
                    return ok();
                }
                return error(0, "", "Connection.isValid(10) returned false", "isValid");
            case "begin":
                if (!h.conn.getAutoCommit()) {
                    throw new UsageError("begin: a transaction is already open on this connection");
                }
                h.conn.setAutoCommit(false);
                return ok();
            case "commit":
            case "rollback":
                if (h.conn.getAutoCommit()) {
                    throw new UsageError(op + ": no transaction is open on this connection");
                }
                if (op.equals("commit")) {
                    h.conn.commit();                // on failure the transaction stays open: roll it back
                } else {
                    h.conn.rollback();
                }
                h.conn.setAutoCommit(true);
                return ok();
            case "prepare": {
                String name = str(cmd, "name", true);
                PreparedStatement ps = h.conn.prepareStatement(str(cmd, "sql", true));
                PreparedStatement old = h.stmts.put(name, ps);
                if (old != null) {
                    old.close();
                }
                return ok();
            }
            case "execute": {
                String name = str(cmd, "name", true);
                PreparedStatement ps = h.stmts.get(name);
                if (ps == null) {
                    throw new UsageError("execute: no prepared statement named " + name);
                }
                ps.clearParameters();
                bind(ps, list(cmd.get("args")));
                boolean hasRows = ps.execute();
                return hasRows ? result(ps, true) : affected(ps.getLargeUpdateCount());
            }
            case "batch":
                return batch(h, str(cmd, "sql", true), list(cmd.get("rows")));
            case "recycle":
                release(h);
                held[ci] = null;
                checkout(ci);
                return ok();
            default:
                throw new UsageError("unknown op \"" + op + "\"");
        }
    }

    private Map<String, Object> batch(Held h, String sql, List<Object> rows) throws UsageError, SQLException {
        try (PreparedStatement ps = h.conn.prepareStatement(sql)) {
            for (Object row : rows) {
                bind(ps, list(row));
                ps.addBatch();
            }
            long[] counts;
            try {
                counts = ps.executeLargeBatch();
            } catch (BatchUpdateException e) {
                Map<String, Object> r = error(e);
                List<Object> done = new ArrayList<>();
                for (long n : e.getLargeUpdateCounts()) {
                    done.add(n);
                }
                r.put("counts", done);
                return r;
            }
            Map<String, Object> r = ok();
            List<Object> cs = new ArrayList<>();
            long total = 0;
            for (long n : counts) {
                cs.add(n);
                total += n > 0 ? n : 0;     // SUCCESS_NO_INFO (-2) adds nothing: "counts" shows it as is
            }
            r.put("affected", total);
            r.put("counts", cs);
            return r;
        }
    }

    private static void bind(PreparedStatement ps, List<Object> args) throws UsageError, SQLException {
        for (int i = 0; i < args.size(); i++) {
            Object v = args.get(i);
            int k = i + 1;
            if (v == null) {
                ps.setNull(k, Types.NULL);
            } else if (v instanceof String) {
                ps.setString(k, (String) v);
            } else if (v instanceof Boolean) {
                ps.setBoolean(k, (Boolean) v);
            } else if (v instanceof Long) {
                ps.setLong(k, (Long) v);
            } else if (v instanceof Double) {
                ps.setDouble(k, (Double) v);
            } else if (v instanceof BigDecimal) {
                ps.setBigDecimal(k, (BigDecimal) v);
            } else {
                throw new UsageError("argument " + k + ": only strings, numbers, booleans and null are bound");
            }
        }
    }

    /** Reads every row of the statement's current result as strings (SQL NULL as null). */
    private static Map<String, Object> result(Statement s, boolean hasRows) throws SQLException {
        Map<String, Object> r = ok();
        List<Object> columns = new ArrayList<>();
        List<Object> rows = new ArrayList<>();
        if (hasRows) {
            try (ResultSet rs = s.getResultSet()) {
                ResultSetMetaData md = rs.getMetaData();
                int n = md.getColumnCount();
                for (int i = 1; i <= n; i++) {
                    columns.add(md.getColumnLabel(i));
                }
                while (rs.next()) {
                    List<Object> row = new ArrayList<>(n);
                    for (int i = 1; i <= n; i++) {
                        row.add(rs.getString(i));
                    }
                    rows.add(row);
                }
            }
        } else {
            r.put("affected", s.getLargeUpdateCount());
        }
        r.put("columns", columns);
        r.put("rows", rows);
        return r;
    }

    private static Map<String, Object> affected(long n) {
        Map<String, Object> r = ok();
        r.put("affected", n);
        return r;
    }

    static Map<String, Object> ok() {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("ok", true);
        return r;
    }

    static Map<String, Object> error(long code, String sqlstate, String message, String type) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("ok", false);
        r.put("code", code);
        r.put("sqlstate", sqlstate);
        r.put("message", message);
        r.put("type", type);
        return r;
    }

    /** A server error keeps its vendor code and SQLSTATE; a driver-side one has whatever the driver set. */
    static Map<String, Object> error(SQLException e) {
        return error(e.getErrorCode(), e.getSQLState() == null ? "" : e.getSQLState(),
                     String.valueOf(e.getMessage()), e.getClass().getName());
    }

    static Map<String, Object> error(Exception e) {
        if (e instanceof SQLException) {
            return error((SQLException) e);
        }
        return error(0, "", String.valueOf(e), e.getClass().getName());
    }

    static Map<String, Object> usage(String msg) {
        return error(-1, "", msg, "usage");
    }

    private static String str(Map<String, Object> cmd, String key, boolean required) throws UsageError {
        Object v = cmd.get(key);
        if (v instanceof String) {
            return (String) v;
        }
        if (v == null && !required) {
            return null;
        }
        throw new UsageError("\"" + key + "\" must be a string");
    }

    private static Number num(Object v) throws UsageError {
        if (v instanceof Long || v instanceof Double || v instanceof BigDecimal) {
            return (Number) v;
        }
        throw new UsageError("expected a number, got " + v);
    }

    @SuppressWarnings("unchecked")
    private static List<Object> list(Object v) throws UsageError {
        if (v == null) {
            return new ArrayList<>();
        }
        if (v instanceof List) {
            return (List<Object>) v;
        }
        throw new UsageError("expected a JSON array, got " + v);
    }
}
