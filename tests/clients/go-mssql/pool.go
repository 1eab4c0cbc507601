// The "pool" scenario: a database/sql connection pool (go-mssqldb) shared by worker goroutines, as a Go
// service uses it: each insert checks a connection out of the pool and returns it (go-mssqldb then sends
// RESETCONNECTION with the next request on it), every third write in a transaction (BeginTx, insert,
// update, Commit). Runs until the file named by -until exists (at most -max-seconds) and prints
// {"acked": [ids whose statement or commit succeeded], "errors": [...], "conns": pool connections opened}.
//
//	sy-go-mssql -dsn URL pool -workers 8 -pool 4 -think-ms 50 -prefix g -until FILE
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

func pool(ctx context.Context, db *sql.DB, args []string) {
	fs := flag.NewFlagSet("pool", flag.ExitOnError)
	workers := fs.Int("workers", 8, "goroutines sharing the pool")
	size := fs.Int("pool", 4, "pool size (max open = max idle; no lifetime: no login during a switch)")
	prefix := fs.String("prefix", "g", "id prefix of the rows written (dbo.load: id, t, u)")
	until := fs.String("until", "", "stop once this file exists")
	maxSeconds := fs.Int("max-seconds", 90, "stop after this long anyway")
	think := fs.Int("think-ms", 50, "pause of each goroutine between writes (the double applies slowly)")
	must(fs.Parse(args))
	db.SetMaxOpenConns(*size)
	db.SetMaxIdleConns(*size)
	db.SetConnMaxLifetime(0)
	// open the whole pool first, so every connection is a logged-in session the switch moves (a login during a
	// switch waits for the hold and lands on the new side: tested in test_tds_switch.py)
	var held []*sql.Conn
	for i := 0; i < *size; i++ {
		c, err := db.Conn(ctx)
		must(err)
		must(c.PingContext(ctx))
		held = append(held, c)
	}
	for _, c := range held {
		must(c.Close())
	}
	var (
		mu     sync.Mutex
		acked  = []string{}
		errs   = []string{}
		wg     sync.WaitGroup
		stop   = make(chan struct{})
		failed = func(w int, err error) {
			mu.Lock()
			errs = append(errs, fmt.Sprintf("worker %d: %v", w, err))
			mu.Unlock()
		}
	)
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%s%d-%d", *prefix, w, n)
				var err error
				if n%3 == 2 {
					err = txWrite(ctx, db, id, w)
				} else {
					_, err = db.ExecContext(ctx, "INSERT INTO dbo.load (id, t, u) VALUES (@p1, @p2, 0)", id, w)
				}
				if err != nil {
					failed(w, err)
					time.Sleep(50 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
				time.Sleep(time.Duration(*think) * time.Millisecond)
			}
		}(w)
	}
	deadline := time.Now().Add(time.Duration(*maxSeconds) * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(*until); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	out(map[string]any{"acked": acked, "errors": errs, "conns": db.Stats().OpenConnections})
}

func txWrite(ctx context.Context, db *sql.DB, id string, w int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err = tx.ExecContext(ctx, "INSERT INTO dbo.load (id, t, u) VALUES (@p1, @p2, 0)", id, w); err == nil {
		_, err = tx.ExecContext(ctx, "UPDATE dbo.load SET u = u + 1 WHERE id = @p1", id)
	}
	if err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
