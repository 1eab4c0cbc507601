// sy-go-client: a real Go database/sql + go-sql-driver/mysql client driven one JSON command per line on
// stdin, one JSON reply per line on stdout (tests/clients/README.md; tests/integration/clients.py drives it).
// It holds N connections pinned out of a database/sql pool (db.Conn), N=1 unless -pool says otherwise, so a
// test decides which connection each command runs on. It does not retry or reconnect by itself: a pinned
// connection that broke stays broken until a `recycle` command returns it to the pool and checks out another.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// One pinned connection and what is open on it.
type pinned struct {
	conn  *sql.Conn            // checked out of the pool until recycle/close
	tx    *sql.Tx              // non-nil between begin and commit/rollback: commands run inside it
	stmts map[string]*prepared // server-side prepared statements by test-chosen name; bound to conn
}

type prepared struct {
	stmt    *sql.Stmt
	isQuery bool // execute reads rows (Query) rather than an affected count (Exec)
}

type command struct {
	Op    string              `json:"op"`
	SQL   string              `json:"sql"`
	Name  string              `json:"name"`
	Args  []json.RawMessage   `json:"args"`
	Rows  [][]json.RawMessage `json:"rows"`
	Conn  int                 `json:"conn"`
	Query *bool               `json:"query"` // prepare/execute: override the SELECT-like guess
}

type reply map[string]any

var (
	db      *sql.DB
	conns   []*pinned
	initSQL string
	ctx     = context.Background()
)

func main() {
	dsn := flag.String("dsn", "", "go-sql-driver/mysql DSN, e.g. user:pw@tcp(127.0.0.1:3306)/db")
	pool := flag.Int("pool", 1, "connections to check out of the pool and pin (1: a single connection)")
	flag.StringVar(&initSQL, "init-sql", "", "statement run on every connection right after checkout")
	flag.Parse()
	out := bufio.NewWriter(os.Stdout)
	if *dsn == "" || *pool < 1 {
		emit(out, reply{"ok": false, "ready": false, "code": -1, "sqlstate": "", "message": "need -dsn and -pool >= 1"})
		os.Exit(2)
	}
	if r := open(*dsn, *pool); r["ok"] != true {
		emit(out, r)
		os.Exit(1)
	} else {
		emit(out, r)
	}
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	for {
		line, err := in.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) > 0 {
			var c command
			var r reply
			dec := json.NewDecoder(strings.NewReader(string(line)))
			dec.UseNumber()
			if derr := dec.Decode(&c); derr != nil {
				r = usage("bad JSON: " + derr.Error())
			} else if c.Op == "close" {
				closeAll()
				emit(out, reply{"ok": true})
				return
			} else {
				r = run(&c)
			}
			emit(out, r)
		}
		if err != nil { // EOF: the driving test went away
			closeAll()
			return
		}
	}
}

func emit(out *bufio.Writer, r reply) {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(usage("cannot encode reply: " + err.Error()))
	}
	out.Write(b)
	out.WriteByte('\n')
	out.Flush()
}

func open(dsn string, n int) reply {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return reply{"ok": false, "ready": false, "code": -1, "sqlstate": "", "message": err.Error()}
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return errReply(err, reply{"ready": false})
	}
	db = sql.OpenDB(connector)
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	conns = make([]*pinned, n)
	for i := range conns {
		if r := checkout(i); r != nil {
			r["ready"] = false
			return r
		}
	}
	var version string
	if err := conns[0].conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return errReply(err, reply{"ready": false})
	}
	return reply{"ok": true, "ready": true, "client": "go-sql-driver/mysql", "driver_version": driverVersion(),
		"server_version": version, "conns": n}
}

// checkout pins a fresh pooled connection at index i and runs the init SQL on it; nil on success.
func checkout(i int) reply {
	c, err := db.Conn(ctx)
	if err != nil {
		return errReply(err, nil)
	}
	if initSQL != "" {
		if _, err := c.ExecContext(ctx, initSQL); err != nil {
			c.Close()
			return errReply(err, nil)
		}
	}
	conns[i] = &pinned{conn: c, stmts: map[string]*prepared{}}
	return nil
}

func release(p *pinned) {
	if p == nil {
		return
	}
	if p.tx != nil {
		p.tx.Rollback()
	}
	for _, s := range p.stmts {
		s.stmt.Close()
	}
	p.conn.Close()
}

func closeAll() {
	for i, p := range conns {
		release(p)
		conns[i] = nil
	}
	if db != nil {
		db.Close()
	}
}

func run(c *command) reply {
	if c.Conn < 0 || c.Conn >= len(conns) {
		return usage(fmt.Sprintf("conn %d out of range (0..%d)", c.Conn, len(conns)-1))
	}
	p := conns[c.Conn]
	if p == nil && c.Op != "recycle" {
		return usage(fmt.Sprintf("conn %d is not checked out (a failed recycle?)", c.Conn))
	}
	switch c.Op {
	case "query":
		return doQuery(p, c.SQL, nil, nil)
	case "exec":
		return doExec(p, c.SQL, nil, nil)
	case "ping":
		if err := p.conn.PingContext(ctx); err != nil {
			return errReply(err, nil)
		}
		return reply{"ok": true}
	case "begin":
		if p.tx != nil {
			return usage("begin: a transaction is already open on this connection")
		}
		tx, err := p.conn.BeginTx(ctx, nil)
		if err != nil {
			return errReply(err, nil)
		}
		p.tx = tx
		return reply{"ok": true}
	case "commit", "rollback":
		if p.tx == nil {
			return usage(c.Op + ": no transaction is open on this connection")
		}
		var err error
		if c.Op == "commit" {
			err = p.tx.Commit()
		} else {
			err = p.tx.Rollback()
		}
		p.tx = nil // database/sql ends the Tx whatever the outcome
		if err != nil {
			return errReply(err, nil)
		}
		return reply{"ok": true}
	case "prepare":
		if c.Name == "" {
			return usage("prepare needs a name")
		}
		stmt, err := p.conn.PrepareContext(ctx, c.SQL)
		if err != nil {
			return errReply(err, nil)
		}
		if old := p.stmts[c.Name]; old != nil {
			old.stmt.Close()
		}
		isQuery := looksLikeQuery(c.SQL)
		if c.Query != nil {
			isQuery = *c.Query
		}
		p.stmts[c.Name] = &prepared{stmt: stmt, isQuery: isQuery}
		return reply{"ok": true}
	case "execute":
		ps := p.stmts[c.Name]
		if ps == nil {
			return usage("execute: no prepared statement named " + c.Name)
		}
		args, err := values(c.Args)
		if err != nil {
			return usage(err.Error())
		}
		stmt := ps.stmt
		if p.tx != nil {
			stmt = p.tx.StmtContext(ctx, stmt)
		}
		isQuery := ps.isQuery
		if c.Query != nil {
			isQuery = *c.Query
		}
		if isQuery {
			return doQuery(p, "", stmt, args)
		}
		return doExec(p, "", stmt, args)
	case "batch":
		return doBatch(p, c)
	case "recycle":
		release(p)
		conns[c.Conn] = nil
		if r := checkout(c.Conn); r != nil {
			return r
		}
		return reply{"ok": true}
	}
	return usage("unknown op " + fmt.Sprintf("%q", c.Op))
}

// doBatch runs one prepared INSERT per row inside a transaction: the caller's if one is open, else its own.
func doBatch(p *pinned, c *command) reply {
	own := p.tx == nil
	tx := p.tx
	if own {
		var err error
		if tx, err = p.conn.BeginTx(ctx, nil); err != nil {
			return errReply(err, nil)
		}
	}
	fail := func(err error, counts []int64) reply {
		if own {
			tx.Rollback()
		}
		return errReply(err, reply{"counts": counts})
	}
	stmt, err := tx.PrepareContext(ctx, c.SQL)
	if err != nil {
		return fail(err, nil)
	}
	defer stmt.Close()
	counts := []int64{}
	var total int64
	for _, row := range c.Rows {
		args, err := values(row)
		if err != nil {
			if own {
				tx.Rollback()
			}
			return usage(err.Error())
		}
		res, err := stmt.ExecContext(ctx, args...)
		if err != nil {
			return fail(err, counts)
		}
		n, _ := res.RowsAffected()
		counts = append(counts, n)
		total += n
	}
	if own {
		if err := tx.Commit(); err != nil {
			return errReply(err, reply{"counts": counts})
		}
	}
	return reply{"ok": true, "affected": total, "counts": counts}
}

func doQuery(p *pinned, query string, stmt *sql.Stmt, args []any) reply {
	var rows *sql.Rows
	var err error
	switch {
	case stmt != nil:
		rows, err = stmt.QueryContext(ctx, args...)
	case p.tx != nil:
		rows, err = p.tx.QueryContext(ctx, query)
	default:
		rows, err = p.conn.QueryContext(ctx, query)
	}
	if err != nil {
		return errReply(err, nil)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return errReply(err, nil)
	}
	out := [][]*string{}
	raw := make([]sql.RawBytes, len(cols))
	dest := make([]any, len(cols))
	for i := range raw {
		dest[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return errReply(err, nil)
		}
		row := make([]*string, len(cols))
		for i, b := range raw {
			if b != nil {
				s := string(b)
				row[i] = &s
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return errReply(err, nil)
	}
	return reply{"ok": true, "columns": cols, "rows": out}
}

func doExec(p *pinned, query string, stmt *sql.Stmt, args []any) reply {
	var res sql.Result
	var err error
	switch {
	case stmt != nil:
		res, err = stmt.ExecContext(ctx, args...)
	case p.tx != nil:
		res, err = p.tx.ExecContext(ctx, query)
	default:
		res, err = p.conn.ExecContext(ctx, query)
	}
	if err != nil {
		return errReply(err, nil)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return errReply(err, nil)
	}
	return reply{"ok": true, "affected": n}
}

// values turns JSON arguments into driver values: strings, int64 (float64 if not integral), bool, nil.
func values(raw []json.RawMessage) ([]any, error) {
	out := make([]any, len(raw))
	for i, r := range raw {
		dec := json.NewDecoder(strings.NewReader(string(r)))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("argument %d: %v", i+1, err)
		}
		switch x := v.(type) {
		case json.Number:
			if n, err := x.Int64(); err == nil {
				out[i] = n
			} else if f, err := x.Float64(); err == nil {
				out[i] = f
			} else {
				return nil, fmt.Errorf("argument %d: %v", i+1, err)
			}
		case string, bool, nil:
			out[i] = x
		default:
			return nil, fmt.Errorf("argument %d: only strings, numbers, booleans and null are bound", i+1)
		}
	}
	return out, nil
}

func looksLikeQuery(q string) bool {
	f := strings.Fields(strings.TrimLeft(q, "( \t\r\n"))
	if len(f) == 0 {
		return false
	}
	switch strings.ToUpper(f[0]) {
	case "SELECT", "SHOW", "WITH", "VALUES", "TABLE", "DESCRIBE", "DESC", "EXPLAIN":
		return true
	}
	return false
}

// errReply maps a driver error to {"ok":false,"code","sqlstate","message","type"}: a server error keeps its
// vendor code and SQLSTATE; anything else (network, driver state) has code 0 and an empty SQLSTATE.
func errReply(err error, extra reply) reply {
	r := reply{"ok": false, "code": 0, "sqlstate": "", "message": err.Error(), "type": fmt.Sprintf("%T", err)}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		r["code"] = int(me.Number)
		r["sqlstate"] = strings.TrimRight(string(me.SQLState[:]), "\x00")
		r["message"] = me.Message
	}
	for k, v := range extra {
		r[k] = v
	}
	return r
}

// usage: the command itself was wrong (a test bug, not an SQL error); code -1 makes clients.py raise.
func usage(msg string) reply {
	return reply{"ok": false, "code": -1, "sqlstate": "", "message": msg}
}

// driverVersion reads the go-sql-driver/mysql version the binary was built with.
func driverVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/go-sql-driver/mysql" {
				return d.Version
			}
		}
	}
	return "unknown"
}
