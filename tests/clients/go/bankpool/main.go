// bankpool: a pooled application workload for `make conformance` (scripts/conformance.py drives it).
//
// A database/sql pool of -pool connections (go-sql-driver/mysql, server-side prepared statements) whose
// connector runs init SQL on every new connection, as HikariCP's connectionInitSql does: session sql_mode,
// time_zone, innodb_lock_wait_timeout and a user variable @conn_tag unique to the connection. -workers
// goroutines move money between -accounts accounts of bank.accounts (the total never changes) and record
// each acknowledged transfer in bank.transfers (worker, seq). A transaction that gets 1213 (Switchyard's
// "rolled back by a switchover", or an InnoDB deadlock) is rolled back and run again with the same
// (worker, seq): retries are counted apart from errors. Anything else is an error.
//
// Line protocol: a ready line {"ok":true,"ready":true,...}; then one command per stdin line, one JSON
// reply line each:
//
//	check  takes every connection of the pool at once (db.Conn x pool), reads its session state and
//	       compares it with what init SQL set; replies with the figures since start and since the last
//	       check (transfers, retries, errors, worst transfer latency) and the state of each connection.
//	stop   stops the workers, then answers like check and exits 0.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

const wantSQLMode = "STRICT_ALL_TABLES,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
const wantTimeZone = "+02:00"
const wantLockWait = "7"

// initConnector runs the init SQL on each new physical connection and counts them: a pool that silently
// replaced a broken connection shows up as more connects than pool slots.
type initConnector struct {
	inner    driver.Connector
	connects atomic.Int64
}

func (c *initConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	n := c.connects.Add(1)
	q := fmt.Sprintf("SET SESSION sql_mode = '%s', SESSION time_zone = '%s', "+
		"SESSION innodb_lock_wait_timeout = %s, @conn_tag = 'c%d'", wantSQLMode, wantTimeZone, wantLockWait, n)
	if _, err := conn.(driver.ExecerContext).ExecContext(ctx, q, nil); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (c *initConnector) Driver() driver.Driver { return c.inner.Driver() }

type counters struct {
	transfers, retriesSwitch, retriesDeadlock, errors atomic.Int64
	maxLatencyUs                                      atomic.Int64
}

var (
	db       *sql.DB
	conn     *initConnector
	total    counters // since start
	interval counters // since the last check
	errMu    sync.Mutex
	errList  []string
	poolSize int
	tags     map[string]bool // @conn_tag of each connection seen at the ready line
)

func is1213(err error) (bool, bool) {
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1213 {
		return true, strings.Contains(me.Message, "Switchyard")
	}
	return false, false
}

func noteError(w int, what string, err error) {
	total.errors.Add(1)
	interval.errors.Add(1)
	errMu.Lock()
	if len(errList) < 50 {
		errList = append(errList, fmt.Sprintf("worker %d %s: %v", w, what, err))
	}
	errMu.Unlock()
}

// transfer runs one transfer as one transaction; returns the error of the first statement that failed.
func transfer(ctx context.Context, upd, ins *sql.Stmt, w int, seq int64, a, b, amt int) (string, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return "begin", err
	}
	lo, hi, dlo, dhi := a, b, -amt, amt // lock rows in id order: no deadlocks between workers
	if lo > hi {
		lo, hi, dlo, dhi = b, a, amt, -amt
	}
	var bal int64
	if err = tx.QueryRowContext(ctx, "SELECT balance FROM accounts WHERE id = ? FOR UPDATE", lo).Scan(&bal); err != nil {
		tx.Rollback()
		return "select", err
	}
	if _, err = tx.StmtContext(ctx, upd).ExecContext(ctx, dlo, lo); err != nil {
		tx.Rollback()
		return "update", err
	}
	if _, err = tx.StmtContext(ctx, upd).ExecContext(ctx, dhi, hi); err != nil {
		tx.Rollback()
		return "update", err
	}
	if _, err = tx.StmtContext(ctx, ins).ExecContext(ctx, w, seq, a, b, amt); err != nil {
		tx.Rollback()
		return "insert", err
	}
	if err = tx.Commit(); err != nil {
		return "commit", err // database/sql ends the Tx whatever COMMIT answered
	}
	return "", nil
}

func worker(ctx context.Context, w, accounts int, wg *sync.WaitGroup) {
	defer wg.Done()
	upd, err := db.Prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?")
	if err != nil {
		noteError(w, "prepare", err)
		return
	}
	defer upd.Close()
	ins, err := db.Prepare("INSERT INTO transfers (worker, seq, src, dst, amount) VALUES (?, ?, ?, ?, ?)")
	if err != nil {
		noteError(w, "prepare", err)
		return
	}
	defer ins.Close()
	rng := rand.New(rand.NewSource(int64(w) + 1))
	for seq := int64(1); ctx.Err() == nil; seq++ {
		a := 1 + rng.Intn(accounts)
		b := 1 + rng.Intn(accounts-1)
		if b >= a {
			b++
		}
		amt := 1 + rng.Intn(20)
		t0 := time.Now()
		for attempt := 0; ; attempt++ {
			what, err := transfer(context.Background(), upd, ins, w, seq, a, b, amt)
			if err == nil {
				total.transfers.Add(1)
				interval.transfers.Add(1)
				break
			}
			if yes, sy := is1213(err); yes && attempt < 20 {
				if sy {
					total.retriesSwitch.Add(1)
					interval.retriesSwitch.Add(1)
				} else {
					total.retriesDeadlock.Add(1)
					interval.retriesDeadlock.Add(1)
				}
				continue
			}
			noteError(w, what, err)
			break
		}
		us := time.Since(t0).Microseconds()
		for _, c := range []*counters{&total, &interval} {
			for old := c.maxLatencyUs.Load(); us > old && !c.maxLatencyUs.CompareAndSwap(old, us); old = c.maxLatencyUs.Load() {
			}
		}
	}
}

type connState struct {
	Tag      string `json:"tag"`
	SQLMode  string `json:"sql_mode"`
	TimeZone string `json:"time_zone"`
	LockWait string `json:"innodb_lock_wait_timeout"`
	Database string `json:"database"`
	Backend  string `json:"backend_thread"`
	Problem  string `json:"problem,omitempty"`
}

// check takes every pooled connection at once and reads its session state.
func check() map[string]any {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var held []*sql.Conn
	var states []connState
	problems := []string{}
	for i := 0; i < poolSize; i++ {
		c, err := db.Conn(ctx)
		if err != nil {
			problems = append(problems, fmt.Sprintf("taking connection %d of %d: %v", i+1, poolSize, err))
			break
		}
		held = append(held, c)
	}
	seen := map[string]bool{}
	for _, c := range held {
		var st connState
		var tag, dbname sql.NullString
		err := c.QueryRowContext(ctx, "SELECT @conn_tag, @@session.sql_mode, @@session.time_zone, "+
			"@@session.innodb_lock_wait_timeout, DATABASE(), CONNECTION_ID()").
			Scan(&tag, &st.SQLMode, &st.TimeZone, &st.LockWait, &dbname, &st.Backend)
		st.Tag, st.Database = tag.String, dbname.String
		switch {
		case err != nil:
			st.Problem = "query: " + err.Error()
		case !tag.Valid || !tags[tag.String]:
			st.Problem = fmt.Sprintf("@conn_tag %q is not one of the pool's first connections (lost user variable or a new connection)", tag.String)
		case seen[tag.String]:
			st.Problem = "two connections with one @conn_tag"
		case st.SQLMode != wantSQLMode || st.TimeZone != wantTimeZone || st.LockWait != wantLockWait || st.Database != "bank":
			st.Problem = "session state differs from the init SQL"
		}
		seen[tag.String] = true
		if st.Problem != "" {
			problems = append(problems, st.Tag+": "+st.Problem)
		}
		states = append(states, st)
	}
	for _, c := range held {
		c.Close()
	}
	sort.Slice(states, func(i, j int) bool { return states[i].Tag < states[j].Tag })
	errMu.Lock()
	errs := append([]string{}, errList...)
	errMu.Unlock()
	r := map[string]any{
		"ok": len(problems) == 0, "conns": states, "problems": problems, "connects": conn.connects.Load(),
		"transfers": total.transfers.Load(), "retries_switchover": total.retriesSwitch.Load(),
		"retries_deadlock": total.retriesDeadlock.Load(), "errors": total.errors.Load(), "error_samples": errs,
		"max_latency_ms": float64(total.maxLatencyUs.Load()) / 1000,
		"interval": map[string]any{
			"transfers": interval.transfers.Swap(0), "retries_switchover": interval.retriesSwitch.Swap(0),
			"retries_deadlock": interval.retriesDeadlock.Swap(0), "errors": interval.errors.Swap(0),
			"max_latency_ms": float64(interval.maxLatencyUs.Swap(0)) / 1000,
		},
	}
	return r
}

func emit(out *bufio.Writer, v any) {
	b, _ := json.Marshal(v)
	out.Write(b)
	out.WriteByte('\n')
	out.Flush()
}

func main() {
	dsn := flag.String("dsn", "", "go-sql-driver/mysql DSN to the bank database, through the proxy")
	flag.IntVar(&poolSize, "pool", 8, "pool size (max open = max idle = pool)")
	workers := flag.Int("workers", 6, "transfer goroutines (fewer than -pool: check can take every connection)")
	accounts := flag.Int("accounts", 50, "accounts in bank.accounts (ids 1..N)")
	flag.Parse()
	out := bufio.NewWriter(os.Stdout)
	cfg, err := mysql.ParseDSN(*dsn)
	if err != nil {
		emit(out, map[string]any{"ok": false, "ready": false, "message": err.Error()})
		os.Exit(2)
	}
	inner, err := mysql.NewConnector(cfg)
	if err != nil {
		emit(out, map[string]any{"ok": false, "ready": false, "message": err.Error()})
		os.Exit(2)
	}
	conn = &initConnector{inner: inner}
	db = sql.OpenDB(conn)
	db.SetMaxOpenConns(poolSize)
	db.SetMaxIdleConns(poolSize)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	// Fill the pool: every connection exists (and has its @conn_tag) before the workers start.
	tags = map[string]bool{}
	for i := 1; i <= poolSize; i++ {
		tags[fmt.Sprintf("c%d", i)] = true
	}
	first := check()
	if first["ok"] != true || conn.connects.Load() != int64(poolSize) {
		first["ready"] = false
		emit(out, first)
		os.Exit(1)
	}
	first["ready"] = true
	emit(out, first)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 1; w <= *workers; w++ {
		wg.Add(1)
		go worker(ctx, w, *accounts, &wg)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "check":
			emit(out, check())
		case "stop":
			stop()
			wg.Wait()
			emit(out, check())
			db.Close()
			return
		case "":
		default:
			emit(out, map[string]any{"ok": false, "message": "unknown command " + in.Text()})
		}
	}
	stop()
	wg.Wait()
	db.Close()
}
