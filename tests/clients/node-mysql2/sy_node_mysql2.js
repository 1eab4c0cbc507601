#!/usr/bin/env node
// Switchyard test client: the Node.js mysql2 driver (pinned in package.json), built and cached by
// scripts/install-test-clients.sh, driven by tests/integration/test_node_mysql2_client.py. Each mode prints one
// JSON line on stdout and exits 0; a driver error inside a mode is part of that line ({ok: false, code, errno,
// sqlState, message}), anything else exits non-zero.
//
//   sy_node_mysql2.js answers HOST PORT USER PASSWORD DB   types, prepared statements (execute), a rolled back
//                                   transaction, multiple statements, and three errors (1062, 1146, 1064)
//   sy_node_mysql2.js ping HOST PORT USER PASSWORD         {ok: true} or the server's error (1045)
//   sy_node_mysql2.js loop HOST PORT USER PASSWORD DB N    a pool of N connections and 2N concurrent writers
//                                   (autocommit inserts, and every third one in a transaction with an update),
//                                   "ready" once each has written, until a line "stop" on stdin: the
//                                   acknowledged ids and every error
'use strict';

const readline = require('readline');
const mysql = require('mysql2/promise');

function out(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function errorOf(e) {
    return { ok: false, code: e.code, errno: e.errno, sqlState: e.sqlState, message: e.sqlMessage || e.message };
}

function options(host, port, user, password, database, extra) {
    return Object.assign({ host, port: Number(port), user, password, database, connectTimeout: 10000,
                           dateStrings: true, supportBigNumbers: true, bigNumberStrings: true }, extra || {});
}

async function answers(host, port, user, password, db) {
    const c = await mysql.createConnection(options(host, port, user, password, db, { multipleStatements: true }));
    const r = {};
    try {
        await c.query('DROP TABLE IF EXISTS node_types');
        await c.query('CREATE TABLE node_types (id INT PRIMARY KEY, d DECIMAL(20,6), s VARCHAR(40), ' +
                      't DATETIME(6), j JSON, b BLOB, n INT NULL) DEFAULT CHARSET=utf8mb4');
        await c.execute('INSERT INTO node_types VALUES (?, ?, ?, ?, ?, ?, ?)',
                        [1, '12345678901234.123456', 'naïve ✓ 𝄞', '2026-12-05 01:02:03.456789', '{"a": [1, 2]}',
                         Buffer.from([0, 1, 2, 255]), null]);
        const [rows] = await c.execute('SELECT id, d, s, t, j, HEX(b) AS b, n FROM node_types WHERE id = ?', [1]);
        r.rows = rows;
        const [text] = await c.query('SELECT id, d, s, t, HEX(b) AS b, n FROM node_types');
        r.text = text;
        await c.beginTransaction();
        await c.execute('INSERT INTO node_types (id, s) VALUES (?, ?)', [2, 'rolled back']);
        await c.rollback();
        const [count] = await c.query('SELECT COUNT(*) AS n FROM node_types');
        r.afterRollback = count[0].n;
        const [multi] = await c.query('SELECT 1 AS a; SELECT 2 AS b');
        r.multi = multi;
        r.errors = [];
        for (const sql of ['INSERT INTO node_types (id) VALUES (1)', 'SELECT * FROM no_such_table', 'SELEC 1']) {
            try {
                await c.query(sql);
                r.errors.push({ ok: true });
            } catch (e) {
                r.errors.push(errorOf(e));
            }
        }
        const [v] = await c.execute('SELECT ? + 1 AS n, ? AS s', [41, 'x']);
        r.params = v;
        r.ok = true;
    } finally {
        await c.end();
    }
    out(r);
}

async function ping(host, port, user, password) {
    try {
        const c = await mysql.createConnection(options(host, port, user, password));
        await c.query('SELECT 1');
        await c.end();
        out({ ok: true });
    } catch (e) {
        out(errorOf(e));
    }
}

async function loop(host, port, user, password, db, n) {
    const pool = mysql.createPool(options(host, port, user, password, db,
                                          { connectionLimit: Number(n), waitForConnections: true }));
    let stop = false;
    const acked = [];
    const errors = [];
    let ready = 0;
    const writers = 2 * Number(n);
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', (line) => { if (line.trim() === 'stop') stop = true; });
    async function writer(w) {
        let first = true;
        for (let k = 0; !stop; k++) {
            const id = w * 1000000 + k;
            try {
                if (k % 3 === 2) {
                    const c = await pool.getConnection();
                    try {
                        await c.beginTransaction();
                        await c.execute('INSERT INTO t (id, v) VALUES (?, ?)', [id, 'txn']);
                        await c.execute('UPDATE t SET v = CONCAT(v, ?) WHERE id = ?', ['+', id]);
                        await c.commit();
                    } catch (e) {
                        await c.rollback().catch(() => {});
                        throw e;
                    } finally {
                        c.release();
                    }
                } else {
                    await pool.execute('INSERT INTO t (id, v) VALUES (?, ?)', [id, 'auto']);
                }
                acked.push(id);
                if (first) {
                    first = false;
                    if (++ready === writers)
                        process.stdout.write('ready\n');
                }
            } catch (e) {
                errors.push(Object.assign(errorOf(e), { id }));
                await new Promise((res) => setTimeout(res, 50));
            }
        }
    }
    const all = [];
    for (let w = 1; w <= writers; w++)
        all.push(writer(w));
    await Promise.all(all);
    rl.close();
    await pool.end();
    out({ ok: true, acked, errors });
}

async function main() {
    const [mode, ...a] = process.argv.slice(2);
    if (mode === 'answers' && a.length === 5)
        return answers(...a);
    if (mode === 'ping' && a.length === 4)
        return ping(...a);
    if (mode === 'loop' && a.length === 6)
        return loop(...a);
    throw new Error('usage: answers|ping|loop HOST PORT USER PASSWORD [DB] [N]');
}

main().catch((e) => {
    process.stderr.write(String(e && e.stack || e) + '\n');
    process.exit(1);
});
