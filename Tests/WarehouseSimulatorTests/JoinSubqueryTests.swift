import CDFSyncCore
import Foundation
import NIOCore
import Synchronization
import Testing
@testable import WarehouseSimulator

/// The SQL a client's custom SQL source needs: derived tables, `WITH`, `[INNER|LEFT] JOIN … ON`, qualified names,
/// aliases, `a.*`; with Databricks' error classes, per-table permissions, and the generated tables still streaming.
@Suite struct JoinSubqueryTests {
    static let workspaceJSON = #"""
    {"format": "cdfsync-sim/1",
     "warehouses": [{"id": "0a1b2c3d4e5f6071", "name": "WH", "state": "RUNNING"}],
     "principals": [
       {"name": "analyst", "tokens": ["dapi-analyst"], "warehouses": {"0a1b2c3d4e5f6071": "CAN_USE"},
        "grants": [{"on": "main", "privileges": ["USE CATALOG"]},
                   {"on": "main.panel", "privileges": ["USE SCHEMA", "SELECT"]},
                   {"on": "main.private", "privileges": ["USE SCHEMA"]}]},
       {"name": "viewer", "tokens": ["dapi-viewer"], "warehouses": {"0a1b2c3d4e5f6071": "CAN_USE"},
        "grants": [{"on": "main", "privileges": ["USE CATALOG"]},
                   {"on": "main.panel", "privileges": ["USE SCHEMA"]},
                   {"on": "main.panel.active", "privileges": ["SELECT"]}]}],
     "tables": [
       {"name": "main.panel.people",
        "columns": [{"name": "id", "type": "BIGINT"}, {"name": "email", "type": "STRING"},
                    {"name": "country", "type": "STRING"}, {"name": "updated_at", "type": "TIMESTAMP"}],
        "commits": [{"version": 0, "timestamp": "2026-01-01T00:00:00.000Z", "operation": "CREATE TABLE",
                     "insert": [["1", "ann@example.com", "DE", "2026-01-01T10:00:00.000Z"],
                                ["2", "bob@example.com", "FR", "2026-01-02T10:00:00.000Z"],
                                ["3", "cy@example.com", "DE", "2026-01-03T10:00:00.000Z"],
                                ["4", "dee@example.com", null, null]]}]},
       {"name": "main.panel.consents",
        "columns": [{"name": "person_id", "type": "BIGINT"}, {"name": "status", "type": "STRING"},
                    {"name": "updated_at", "type": "TIMESTAMP"}],
        "commits": [{"version": 0, "timestamp": "2026-01-01T00:00:00.000Z", "operation": "CREATE TABLE",
                     "insert": [["1", "Opted In", "2026-01-05T00:00:00.000Z"],
                                ["3", "Opted Out", "2026-01-06T00:00:00.000Z"],
                                ["3", "Opted In", "2026-01-07T00:00:00.000Z"],
                                ["9", "Opted In", "2026-01-08T00:00:00.000Z"],
                                [null, "Opted In", "2026-01-09T00:00:00.000Z"]]}]},
       {"name": "main.panel.active", "table_type": "VIEW", "columns": [],
        "view": {"source": "main.panel.people", "select": ["id", "email"], "where": "country = 'DE'"}},
       {"name": "main.private.notes",
        "columns": [{"name": "id", "type": "BIGINT"}, {"name": "note", "type": "STRING"}],
        "commits": [{"version": 0, "timestamp": "2026-01-01T00:00:00.000Z", "operation": "CREATE TABLE",
                     "insert": [["1", "secret"]]}]}
     ]}
    """#

    /// A simulator over `workspaceJSON` (plus a generated table `main.panel.big` when asked).
    static func simulator(bigRows: Int? = nil) throws -> Simulator {
        let sim = try Simulator(workspace: try Workspace.load(data: Data(workspaceJSON.utf8)))
        if let bigRows { try sim.addSyntheticTable(name: "main.panel.big", rows: bigRows, seed: 7, updateVersions: 1) }
        return sim
    }

    /// Runs `sql` in process as `principal` (default schema `main.panel`).
    static func run(_ sql: String, on sim: Simulator, as principal: String = "analyst") throws(SQLError) -> ResultSet {
        let (tables, ws) = sim.state.withLock { ($0.tables, $0.principals) }
        let p = ws.first { $0.name == principal }!
        let ex = Executor(
            tables: tables, access: Access(p), defaultCatalog: "main", defaultSchema: "panel", parameters: [:], sql: sql)
        return try ex.execute(try Parser.parse(sql))
    }

    static func rows(_ sql: String, on sim: Simulator, as principal: String = "analyst") throws -> (columns: [String], rows: [[String?]]) {
        let r = try run(sql, on: sim, as: principal)
        return (r.columns.map(\.name), (0..<r.rows.count).map { r.rows.row($0, width: r.columns.count) })
    }

    /// The error `sql` fails with.
    static func failure(_ sql: String, on sim: Simulator, as principal: String = "analyst") -> SQLError? {
        do {
            _ = try run(sql, on: sim, as: principal)
            return nil
        } catch {
            return error
        }
    }

    @Test func derivedTablesFilterOrderAndLimit() async throws {
        let sim = try Self.simulator()
        let r = try Self.rows(
            "SELECT * FROM (SELECT id, email AS mail FROM main.panel.people) AS src WHERE id > 1 ORDER BY id DESC LIMIT 2",
            on: sim)
        #expect(r.columns == ["id", "mail"])
        #expect(r.rows == [["4", "dee@example.com"], ["3", "cy@example.com"]])
        // The alias may be left out (Spark names the subquery itself), and a derived table may nest.
        let nested = try Self.rows(
            "SELECT mail FROM (SELECT * FROM (SELECT email mail, country FROM people) WHERE country = 'DE') t ORDER BY 1",
            on: sim)
        #expect(nested.rows == [["ann@example.com"], ["cy@example.com"]])
        // src.col and a bare col both reach the derived table's columns; the inner table's name does not.
        #expect(try Self.rows("SELECT src.mail FROM (SELECT email AS mail FROM people WHERE id = 2) src", on: sim).rows
            == [["bob@example.com"]])
        #expect(Self.failure("SELECT people.email FROM (SELECT email FROM people) src", on: sim)?.errorClass
            == "UNRESOLVED_COLUMN.WITH_SUGGESTION")
    }

    @Test func commonTableExpressions() async throws {
        let sim = try Self.simulator()
        let r = try Self.rows(
            """
            WITH de AS (SELECT id, email FROM people WHERE country = 'DE'),
                 later AS (SELECT * FROM de WHERE id > 1)
            SELECT email FROM later ORDER BY email
            """, on: sim)
        #expect(r.rows == [["cy@example.com"]])
        // A WITH name hides a table of that name; inside its own definition the name is still the table
        // (non-recursive), and an inner WITH hides an outer one.
        #expect(try Self.rows("WITH people AS (SELECT id FROM people WHERE id < 3) SELECT count(*) FROM people", on: sim).rows
            == [["2"]])
        #expect(try Self.rows(
            "WITH x AS (SELECT 1 AS v) SELECT v FROM (WITH x AS (SELECT 2 AS v) SELECT v FROM x) AS inner_x", on: sim).rows
            == [["2"]])
        let dup = Self.failure("WITH a AS (SELECT 1 AS v), A AS (SELECT 2 AS v) SELECT * FROM a", on: sim)
        #expect(dup?.errorClass == "DUPLICATED_CTE_NAMES")
        #expect(dup?.sqlState == "42602")
        // A name defined later in the list is not visible earlier.
        #expect(Self.failure("WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS v) SELECT * FROM a", on: sim)?.errorClass
            == "TABLE_OR_VIEW_NOT_FOUND")
    }

    @Test func innerAndLeftJoinsWithAliasesAndQualifiedNames() async throws {
        let sim = try Self.simulator()
        let inner = try Self.rows(
            """
            SELECT p.id, p.email, c.status FROM main.panel.people AS p
            INNER JOIN main.panel.consents c ON p.id = c.person_id ORDER BY p.id, c.updated_at
            """, on: sim)
        #expect(inner.columns == ["id", "email", "status"])
        #expect(inner.rows == [
            ["1", "ann@example.com", "Opted In"], ["3", "cy@example.com", "Opted Out"], ["3", "cy@example.com", "Opted In"],
        ])
        let left = try Self.rows(
            """
            SELECT p.id, c.status FROM people p LEFT OUTER JOIN consents c
              ON c.person_id = p.id AND c.status = 'Opted In'
            ORDER BY 1
            """, on: sim)
        #expect(left.rows == [["1", "Opted In"], ["2", nil], ["3", "Opted In"], ["4", nil]])
        // Without aliases the table name, or more of it, qualifies a column.
        let named = try Self.rows(
            """
            SELECT people.id, panel.people.email, main.panel.people.country FROM main.panel.people
            JOIN consents ON people.id = consents.person_id WHERE consents.status = 'Opted Out'
            """, on: sim)
        #expect(named.rows == [["3", "cy@example.com", "DE"]])
        // An alias replaces the table's name.
        let gone = Self.failure("SELECT people.id FROM people p", on: sim)
        #expect(gone?.errorClass == "UNRESOLVED_COLUMN.WITH_SUGGESTION")
        #expect(gone?.text.contains("`people`.`id` cannot be resolved. Did you mean one of the following? [`p`.`id`") == true)
    }

    @Test func threeSourcesTableViewDerivedTableAndCTE() async throws {
        let sim = try Self.simulator()
        let r = try Self.rows(
            """
            WITH latest AS (SELECT 3 AS person_id, max(updated_at) AS at FROM consents WHERE person_id = 3)
            SELECT a.email, c.status, l.at
            FROM main.panel.active a
            JOIN (SELECT person_id, status, updated_at FROM consents) AS c ON c.person_id = a.id
            JOIN latest l ON l.person_id = c.person_id AND l.at = c.updated_at
            """, on: sim)
        #expect(r.columns == ["email", "status", "at"])
        #expect(r.rows == [["cy@example.com", "Opted In", "2026-01-07T00:00:00.000Z"]])
    }

    @Test func joinsWithoutAnEqualityCompareEveryPair() async throws {
        let sim = try Self.simulator()
        let r = try Self.rows(
            "SELECT p.id, c.person_id FROM people p JOIN consents c ON p.id > c.person_id ORDER BY p.id, c.person_id",
            on: sim)
        var expected: [[String?]] = []
        for p in 1...4 {
            for c in [1, 3, 3, 9] where p > c { expected.append([String(p), String(c)]) }
        }
        #expect(r.rows == expected)
        // NULL keys match nothing, in a hash join as in a comparison.
        #expect(try Self.rows("SELECT count(*) FROM consents a JOIN consents b ON a.person_id = b.person_id", on: sim).rows
            == [["6"]])
    }

    @Test func starsSelectEverythingOrOneSource() async throws {
        let sim = try Self.simulator()
        let r = try Self.rows(
            "SELECT c.*, p.email FROM people p JOIN consents c ON p.id = c.person_id WHERE p.id = 1", on: sim)
        #expect(r.columns == ["person_id", "status", "updated_at", "email"])
        #expect(r.rows == [["1", "Opted In", "2026-01-05T00:00:00.000Z", "ann@example.com"]])
        let all = try Self.rows("SELECT * FROM people p JOIN consents c ON p.id = c.person_id WHERE p.id = 1", on: sim)
        #expect(all.columns == ["id", "email", "country", "updated_at", "person_id", "status", "updated_at"])
        #expect(try Self.rows("SELECT main.panel.people.* FROM main.panel.people WHERE id = 2", on: sim).rows
            == [["2", "bob@example.com", "FR", "2026-01-02T10:00:00.000Z"]])
        let bad = Self.failure("SELECT x.* FROM people p", on: sim)
        #expect(bad?.errorClass == "CANNOT_RESOLVE_STAR_EXPAND")
        #expect(bad?.sqlState == "42704")
        #expect(bad?.text.hasPrefix("Cannot resolve `x`.* given input columns `id`, `email`, `country`, `updated_at`.") == true)
    }

    @Test func ambiguousAndUnresolvedColumnsAreDatabricksErrors() async throws {
        let sim = try Self.simulator()
        let join = "FROM people p JOIN consents c ON p.id = c.person_id"
        for sql in [
            "SELECT updated_at \(join)", "SELECT p.id \(join) WHERE updated_at IS NOT NULL",
            "SELECT p.id FROM people p JOIN consents c ON updated_at = c.updated_at",
        ] {
            let e = Self.failure(sql, on: sim)
            #expect(e?.errorClass == "AMBIGUOUS_REFERENCE", "\(sql)")
            #expect(e?.sqlState == "42704")
            #expect(e?.text == "Reference `updated_at` is ambiguous, could be: [`c`.`updated_at`, `p`.`updated_at`].", "\(sql)")
        }
        // Qualified, it is fine; a subquery that selects a name twice is ambiguous only where that name is used.
        #expect(try Self.rows("SELECT c.updated_at \(join) WHERE p.id = 1", on: sim).rows == [["2026-01-05T00:00:00.000Z"]])
        let twice = "(SELECT p.updated_at, c.updated_at \(join) WHERE p.id = 1) AS src"
        #expect(try Self.rows("SELECT * FROM \(twice)", on: sim).rows.count == 1)
        let e = Self.failure("SELECT * FROM \(twice) ORDER BY updated_at", on: sim)
        #expect(e?.text == "Reference `updated_at` is ambiguous, could be: [`src`.`updated_at`, `src`.`updated_at`].")
        // Unresolved: Spark's suggestions — qualified as much as needed to tell the sources apart, ordered by edit
        // distance between the quoted candidate and the name as written (so short names come early), five at most.
        let typo = Self.failure("SELECT p.emial \(join)", on: sim)
        #expect(typo?.errorClass == "UNRESOLVED_COLUMN.WITH_SUGGESTION")
        #expect(typo?.text
            == "A column, variable, or function parameter with name `p`.`emial` cannot be resolved. Did you mean one of the following? [`p`.`id`, `p`.`email`, `c`.`status`, `p`.`country`, `p`.`updated_at`].")
        let single = Self.failure("SELECT emial FROM people", on: sim)
        #expect(single?.text.hasSuffix("Did you mean one of the following? [`id`, `email`, `country`, `updated_at`].") == true)
        // Unknown tables anywhere in the statement.
        for sql in [
            "SELECT 1 FROM people p JOIN nope n ON p.id = n.id", "SELECT * FROM (SELECT * FROM nope) AS s",
            "WITH a AS (SELECT * FROM main.nope.t) SELECT * FROM a",
        ] {
            #expect(Self.failure(sql, on: sim)?.errorClass == "TABLE_OR_VIEW_NOT_FOUND", "\(sql)")
        }
    }

    @Test func everyTableReadNeedsSelect() async throws {
        let sim = try Self.simulator()
        for sql in [
            "SELECT p.id FROM people p JOIN main.private.notes n ON p.id = n.id",
            "SELECT * FROM (SELECT * FROM main.private.notes) AS s",
            "WITH n AS (SELECT * FROM main.private.notes) SELECT p.id FROM people p LEFT JOIN n ON n.id = p.id",
        ] {
            let e = Self.failure(sql, on: sim)
            #expect(e?.errorClass == "INSUFFICIENT_PERMISSIONS", "\(sql)")
            #expect(e?.text == "Insufficient privileges: User does not have SELECT on Table 'main.private.notes'.")
        }
        // A view reads with its owner's rights: SELECT on the view is enough, also joined with itself.
        let r = try Self.rows(
            "SELECT a.id, b.email FROM main.panel.active a JOIN main.panel.active b ON a.id = b.id ORDER BY a.id",
            on: sim, as: "viewer")
        #expect(r.rows == [["1", "ann@example.com"], ["3", "cy@example.com"]])
        // ...but the table under it, read directly in the same join, needs its own grant.
        let e = Self.failure("SELECT a.id FROM main.panel.active a JOIN main.panel.people p ON a.id = p.id", on: sim, as: "viewer")
        #expect(e?.text == "Insufficient privileges: User does not have SELECT on Table 'main.panel.people'.")
    }

    @Test func unsupportedJoinsFailClearly() async throws {
        let sim = try Self.simulator()
        for (sql, errorClass) in [
            ("SELECT * FROM people p RIGHT JOIN consents c ON p.id = c.person_id", "UNSUPPORTED_FEATURE.SIMULATOR"),
            ("SELECT * FROM people p, consents c", "UNSUPPORTED_FEATURE.SIMULATOR"),
            ("SELECT * FROM people p JOIN consents c", "UNSUPPORTED_FEATURE.SIMULATOR"),
            ("SELECT * FROM people p JOIN consents c USING (id)", "UNSUPPORTED_FEATURE.SIMULATOR"),
            ("SELECT * FROM (SELECT 1", "PARSE_SYNTAX_ERROR"),
            ("SELECT * FROM people p JOIN ON p.id = 1", "PARSE_SYNTAX_ERROR"),
            ("WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r", "UNSUPPORTED_FEATURE.SIMULATOR"),
        ] {
            #expect(Self.failure(sql, on: sim)?.errorClass == errorClass, "\(sql)")
        }
        let e = Self.failure("SELECT * FROM (SELECT 1 AS a", on: sim)
        #expect(e?.message.contains("Syntax error at or near end of input. SQLSTATE: 42601 (line 1, pos 28)") == true)
        // A million parentheses fail, they do not overflow the stack.
        let deep = "SELECT " + String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000)
        #expect(Self.failure(deep, on: sim)?.errorClass == "UNSUPPORTED_FEATURE.SIMULATOR")
        let deepFrom = "SELECT * FROM " + String(repeating: "(SELECT * FROM ", count: 50_000) + "people"
            + String(repeating: ")", count: 50_000)
        #expect(Self.failure(deepFrom, on: sim)?.errorClass == "UNSUPPORTED_FEATURE.SIMULATOR")
    }

    @Test func generatedTablesStillStreamThroughDerivedTables() async throws {
        let sim = try Self.simulator(bigRows: 1_000_000)
        // A projection of a projection of a million generated rows is still generated on demand.
        let r = try Self.run(
            "SELECT email, participant_id FROM (SELECT participant_id, email, country FROM main.panel.big) AS src", on: sim)
        #expect(r.rows is SyntheticSnapshot)
        #expect(r.rows.count == 1_000_000)
        let direct = try Self.run("SELECT email, participant_id FROM main.panel.big", on: sim)
        var out1 = ByteBuffer(), out2 = ByteBuffer()
        r.rows.renderJSON(999_990..<1_000_000, into: &out1)
        direct.rows.renderJSON(999_990..<1_000_000, into: &out2)
        #expect(out1 == out2)
        #expect(out1.readableBytes > 0)
        // Change data through a WITH name keeps its version order (no sort needed over a million rows).
        let changes = try Self.run(
            "WITH ch AS (SELECT participant_id, _commit_version FROM table_changes('main.panel.big', 1)) SELECT * FROM ch ORDER BY _commit_version",
            on: sim)
        #expect(changes.rows is SyntheticChanges)
        // Joins read both sides: over the limit they fail clearly.
        let e = Self.failure("SELECT * FROM main.panel.big b JOIN people p ON b.email = p.email", on: sim)
        #expect(e?.errorClass == "UNSUPPORTED_FEATURE.SIMULATOR")
        #expect(e?.text == "The warehouse simulator does not support joins of a source of more than 200000 rows.")
    }

    @Test func joinsOfGeneratedTablesWithinTheLimit() async throws {
        let sim = try Self.simulator(bigRows: 2_000)
        let r = try Self.rows(
            """
            SELECT count(*) FROM main.panel.big a JOIN (SELECT participant_id, email FROM main.panel.big) b
            ON a.participant_id = b.participant_id AND a.email = b.email
            """, on: sim)
        #expect(r.rows == [["2000"]])
    }

    @Test func lexerReadsCommentsStringsAndSpacesAsSpark() async throws {
        let sim = try Self.simulator()
        // Nested comments, a `--` comment continued by a backslash, raw strings, Spark's Unicode spaces, a hint.
        let sql = "SELECT /*+ BROADCAST(p) */ id /* a /* nested */ comment */ FROM people -- to the end \\\nWHERE id = 99\n"
            + "WHERE\u{00A0}email\u{3000}= r'ann@example.com'"
        #expect(try Self.rows(sql, on: sim).rows == [["1"]])
        let raw = try Self.rows(#"SELECT r'a\' AS x, "q\"q" AS y, R"-- /*" AS z"#, on: sim)
        #expect(raw.rows == [[#"a\"#, "q\"q", "-- /*"]])
        // A select item's name is the item as written, without the comment after it.
        #expect(try Self.rows("SELECT 1 -- one\n, 'x' /* two */ FROM people WHERE id = 1", on: sim).columns == ["1", "'x'"])
        let unclosed = Self.failure("SELECT 1 /* a /* b */", on: sim)
        #expect(unclosed?.errorClass == "UNCLOSED_BRACKETED_COMMENT")
        #expect(unclosed?.message.hasPrefix(
            "\n[UNCLOSED_BRACKETED_COMMENT] Found an unclosed bracketed comment. Please, append */ at the end of the comment. SQLSTATE: 42601 (line 1, pos 9)")
            == true)
        // A zero-width space is not Spark whitespace; a fullwidth semicolon is not a semicolon.
        #expect(Self.failure("SELECT\u{200B}1", on: sim)?.errorClass == "PARSE_SYNTAX_ERROR")
        #expect(Self.failure("SELECT 1\u{FF1B}", on: sim)?.errorClass == "PARSE_SYNTAX_ERROR")
    }
}

/// The same over HTTP: the result cache keys joins and subqueries by all their tokens.
@Suite struct JoinSubqueryCacheTests {
    @Test func resultCacheKeysJoinsBySQL() async throws {
        let h = try Harness(workspace: try Workspace.load(data: Data(JoinSubqueryTests.workspaceJSON.utf8)),
                            configuration: .init(rowsPerChunk: 100))
        h.token = "dapi-analyst"
        func cached(_ r: [String: Any]) async throws -> Bool {
            let id = r["statement_id"] as! String
            return try await h.call("GET", "/_sim/statements/\(id)", token: "sim-admin").json["from_result_cache"] as! Bool
        }
        let inner = "SELECT p.id, c.status FROM main.panel.people p JOIN main.panel.consents c ON p.id = c.person_id ORDER BY 1"
        let left = "SELECT p.id, c.status FROM main.panel.people p LEFT JOIN main.panel.consents c ON p.id = c.person_id ORDER BY 1"
        #expect(try await h.rows(inner).rows.count == 3)
        #expect(try await cached(h.execute(inner)))
        let l = try await h.execute(left)
        #expect(try await !cached(l))
        #expect(try await h.rows(left).rows.count == 5)
        // An alias moved from one table to the other is another query.
        let swapped = "SELECT c.id, p.status FROM main.panel.people c JOIN main.panel.consents p ON c.id = p.person_id ORDER BY 1"
        #expect(try await !cached(h.execute(swapped)))
        // The clock inside a WITH is still the clock.
        let clock = "WITH t AS (SELECT current_timestamp() AS now) SELECT * FROM t"
        _ = try await h.execute(clock)
        #expect(try await !cached(h.execute(clock)))
    }
}

/// Custom SQL as the engine will send it: guarded, wrapped, run over HTTP with bound parameters.
@Suite struct WrappedCustomSQLTests {
    static let source = try! ReadOnlySQLGuard.check(
        """
        -- consents of the panel, one row per consent event
        SELECT p.id, p.email, c.status, c.updated_at
        FROM main.panel.people p
        JOIN main.panel.consents c ON c.person_id = p.id -- people without consent rows are left out
        ;
        """).get()

    func rows(_ h: Harness, _ statement: (sql: String, parameters: [CDFSyncCore.BoundParameter])) async throws -> [[String?]] {
        let params: [[String: Any]] = statement.parameters.map { p in
            var d: [String: Any] = ["name": p.name]
            if let v = p.value { d["value"] = v }
            if let t = p.type { d["type"] = t }
            return d
        }
        return try await h.rows(statement.sql, params: params).rows
    }

    @Test func watermarkPagesReadEveryRowOnceInOrder() async throws {
        let h = try Harness(workspace: try Workspace.load(data: Data(JoinSubqueryTests.workspaceJSON.utf8)),
                            configuration: .init(rowsPerChunk: 100))
        h.token = "dapi-analyst"
        var after: (cursor: String, key: String)?
        var pages: [[[String?]]] = []
        while pages.count < 10 {
            let page = try await rows(h, SQL.customWatermarkPage(
                Self.source, columns: ["id", "status", "updated_at"], cursor: "updated_at", key: "id",
                upperBound: "2026-01-31T00:00:00Z", after: after, pageSize: 2))
            pages.append(page)
            guard page.count == 2, let last = page.last else { break }
            after = (last[2]!, last[0]!)
        }
        #expect(pages == [
            [["1", "Opted In", "2026-01-05T00:00:00.000Z"], ["3", "Opted Out", "2026-01-06T00:00:00.000Z"]],
            [["3", "Opted In", "2026-01-07T00:00:00.000Z"]],
        ])
        // The upper bound holds back what came later.
        let bounded = try await rows(h, SQL.customWatermarkPage(
            Self.source, columns: ["id"], cursor: "updated_at", key: "id", upperBound: "2026-01-06T12:00:00Z", after: nil,
            pageSize: 100))
        #expect(bounded == [["1"], ["3"]])
    }

    @Test func snapshotAndTestRun() async throws {
        let h = try Harness(workspace: try Workspace.load(data: Data(JoinSubqueryTests.workspaceJSON.utf8)),
                            configuration: .init(rowsPerChunk: 100))
        h.token = "dapi-analyst"
        let f = SQL.filterConditions([Pipeline.Filter(column: "status", op: .eq, value: .scalar("Opted In"))])
        let snapshot = try await h.rows(
            SQL.customSnapshot(Self.source, columns: ["email"], conditions: f.sql) + " ORDER BY `email`",
            params: f.parameters.map { ["name": $0.name, "value": $0.value!] })
        #expect(snapshot.columns == ["email"])
        #expect(snapshot.rows == [["ann@example.com"], ["cy@example.com"]])
        let test = try await h.rows(SQL.customTestRun(Self.source, limit: 2).sql, params: [["name": "n", "value": "2", "type": "INT"]])
        #expect(test.columns == ["id", "email", "status", "updated_at"])
        #expect(test.rows.count == 2)
        // The wrapper needs the same rights as the text: a principal without SELECT on the tables gets the
        // warehouse's permission error, not rows.
        let denied = try await h.execute(SQL.customTestRun(Self.source, limit: 2).sql,
                                   params: [["name": "n", "value": "2", "type": "INT"]], token: "dapi-viewer")
        #expect(errorClass(denied) == "INSUFFICIENT_PERMISSIONS")
    }
}
