// sy-go-mssql: a go-mssqldb (github.com/microsoft/go-mssqldb) client for the SQL Server double's conformance
// tests (tests/integration/test_tds_double.py). Each subcommand runs one scenario against -dsn and prints
// one JSON object on stdout; a SQL Server error exits 3 with {"error": text, "number": N}.
//
//	sy-go-mssql -dsn 'sqlserver://sa:pw@127.0.0.1:PORT?database=master&encrypt=disable' ping|types|tx|prepared|cancel|dupkey|query SQL
//	sy-go-mssql -dsn URL pool [-workers 8 -pool 4 -prefix g -until FILE]   (pool.go: a pooled workload)
package main

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
)

func out(v any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func fail(err error) {
	var me mssql.Error
	if errors.As(err, &me) {
		out(map[string]any{"error": me.Message, "number": me.Number, "class": me.Class, "state": me.State})
		os.Exit(3)
	}
	out(map[string]any{"error": err.Error()})
	os.Exit(2)
}

func must(err error) {
	if err != nil {
		fail(err)
	}
}

func main() {
	dsn := flag.String("dsn", "", "sqlserver:// URL")
	flag.Parse()
	db, err := sql.Open("sqlserver", *dsn)
	must(err)
	defer db.Close()
	ctx := context.Background()
	switch flag.Arg(0) {
	case "ping":
		var v string
		var tc int
		must(db.QueryRowContext(ctx, "SELECT @@VERSION, @@TRANCOUNT").Scan(&v, &tc))
		out(map[string]any{"version": v, "trancount": tc})
	case "types":
		types(ctx, db)
	case "tx":
		tx(ctx, db)
	case "prepared":
		prepared(ctx, db)
	case "dupkey":
		_, err := db.ExecContext(ctx, "CREATE TABLE go_dup (id int PRIMARY KEY)")
		must(err)
		_, err = db.ExecContext(ctx, "INSERT INTO go_dup (id) VALUES (@p1)", 1)
		must(err)
		_, err = db.ExecContext(ctx, "INSERT INTO go_dup (id) VALUES (@p1)", 1)
		if err == nil {
			out(map[string]any{"error": "no error"})
			os.Exit(1)
		}
		fail(err)
	case "cancel":
		// WithCancel, not WithTimeout: go-mssqldb marks a connection bad after DeadlineExceeded (a net.Error)
		c, cancel := context.WithCancel(ctx)
		time.AfterFunc(500*time.Millisecond, cancel)
		conn, err := db.Conn(ctx)
		must(err)
		start := time.Now()
		_, err = conn.ExecContext(c, "WAITFOR DELAY '00:00:10'")
		el := time.Since(start).Seconds()
		var one int
		err2 := conn.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		out(map[string]any{"error": fmt.Sprint(err), "seconds": el, "after": one, "after_error": fmt.Sprint(err2)})
	case "pool":
		pool(ctx, db, flag.Args()[1:])
	case "query":
		rows, err := db.QueryContext(ctx, flag.Arg(1))
		must(err)
		cols, _ := rows.Columns()
		var res [][]any
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			must(rows.Scan(ptrs...))
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					vals[i] = "0x" + hex.EncodeToString(b)
				}
			}
			res = append(res, vals)
		}
		must(rows.Err())
		out(map[string]any{"columns": cols, "rows": res})
	default:
		fmt.Fprintln(os.Stderr, "unknown command")
		os.Exit(2)
	}
}

func types(ctx context.Context, db *sql.DB) {
	_, err := db.ExecContext(ctx, `CREATE TABLE go_types (id int PRIMARY KEY, ti tinyint, si smallint, bi bigint,
		b bit, d decimal(12,3), f float, r real, s nvarchar(40), vs varchar(40), vb varbinary(20), big nvarchar(max),
		dt2 datetime2(7), dto datetimeoffset(7), dd date, g uniqueidentifier, n int NULL)`)
	must(err)
	dt2 := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
	dto := time.Date(2024, 2, 29, 13, 14, 15, 654321000, time.FixedZone("", 2*3600+30*60))
	guid := mssql.UniqueIdentifier{0x6F, 0x96, 0x19, 0xFF, 0x8B, 0x86, 0xD0, 0x11, 0xB4, 0x2D, 0x00, 0xC0, 0x4F, 0xC9, 0x64, 0xFF}
	big := ""
	for i := 0; i < 20000; i++ {
		big += "xé"
	}
	_, err = db.ExecContext(ctx, `INSERT INTO go_types VALUES (@p1,@p2,@p3,@p4,@p5,@p6,@p7,@p8,@p9,@p10,@p11,@p12,@p13,@p14,@p15,@p16,@p17)`,
		1, 200, -300, int64(9000000000), true, "12345.678", 3.5e100, float32(1.25), "Grüße ✓", mssql.VarChar("plain"),
		[]byte{0, 1, 2, 255}, big, dt2, dto, mssql.DateTime1(time.Date(2001, 1, 2, 0, 0, 0, 0, time.UTC)), guid, nil)
	must(err)
	var (
		ti, si           int64
		bi               int64
		b                bool
		d                string
		f                float64
		r                float32
		s, vs, gbig      string
		vb               []byte
		gdt2, gdto, gdd  time.Time
		g                mssql.UniqueIdentifier
		n                sql.NullInt64
	)
	must(db.QueryRowContext(ctx, `SELECT ti, si, bi, b, d, f, r, s, vs, vb, big, dt2, dto, dd, g, n FROM go_types WHERE id = @p1`, 1).
		Scan(&ti, &si, &bi, &b, &d, &f, &r, &s, &vs, &vb, &gbig, &gdt2, &gdto, &gdd, &g, &n))
	out(map[string]any{"ti": ti, "si": si, "bi": bi, "b": b, "d": d, "f": f, "r": r, "s": s, "vs": vs,
		"vb": hex.EncodeToString(vb), "big_ok": gbig == big, "big_len": len([]rune(gbig)),
		"dt2": gdt2.Format(time.RFC3339Nano), "dto": gdto.Format(time.RFC3339Nano), "dd": gdd.Format("2006-01-02"),
		"g": g.String(), "n_valid": n.Valid})
}

func tx(ctx context.Context, db *sql.DB) {
	_, err := db.ExecContext(ctx, "CREATE TABLE go_tx (id int PRIMARY KEY, v nvarchar(10))")
	must(err)
	t, err := db.BeginTx(ctx, nil)
	must(err)
	_, err = t.ExecContext(ctx, "INSERT INTO go_tx VALUES (1, N'a')")
	must(err)
	var tc int
	must(t.QueryRowContext(ctx, "SELECT @@TRANCOUNT").Scan(&tc))
	must(t.Rollback())
	t, err = db.BeginTx(ctx, nil)
	must(err)
	_, err = t.ExecContext(ctx, "INSERT INTO go_tx VALUES (2, N'b')")
	must(err)
	must(t.Commit())
	var ids []int
	rows, err := db.QueryContext(ctx, "SELECT id FROM go_tx ORDER BY id")
	must(err)
	for rows.Next() {
		var id int
		must(rows.Scan(&id))
		ids = append(ids, id)
	}
	out(map[string]any{"trancount_in_tx": tc, "ids": ids})
}

func prepared(ctx context.Context, db *sql.DB) {
	st, err := db.PrepareContext(ctx, "SELECT @p1 + 1, @p2")
	must(err)
	defer st.Close()
	var res []any
	for i := 0; i < 3; i++ {
		var a int
		var b string
		must(st.QueryRowContext(ctx, i, fmt.Sprintf("v%d", i)).Scan(&a, &b))
		res = append(res, []any{a, b})
	}
	out(map[string]any{"rows": res})
}
