import Foundation
import NIOCore
import Synchronization
import Testing
@testable import WarehouseSimulator

/// Random statements and random bytes must produce errors, never crashes.
@Suite struct FuzzTests {
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let pieces = [
        "SELECT", "*", "FROM", "WHERE", "ORDER", "BY", "LIMIT", "OFFSET", "table_changes", "(", ")", ",", ".", "'main.crm.customers'",
        "main.crm.customers", "main.crm.opted_in", "`main`", "id", "email", "_commit_version", "=", "<", ">=", "<>", "AND", "OR",
        "NOT", "IS", "NULL", "IN", "LIKE", "'%a%'", "BETWEEN", "1", "-2", "3.5", ":p", ":q", "VERSION", "AS", "OF", "TIMESTAMP",
        "'2026-03-02'", "DESCRIBE", "HISTORY", "SHOW", "TABLES", "TBLPROPERTIES", "count", "max", "unix_micros", "CAST",
        "STRING", "BIGINT", "DECIMAL(10,2)", ";", "--", "/*", "*/", "`", "'", "\"", "?", "@", "\n", "information_schema",
        "system.information_schema.tables", "DESC", "TABLE", "COLUMNS", "ASC", "DESC", "NULLS", "FIRST", "TRUE",
    ]

    @Test func randomStatementsNeverCrash() async throws {
        var rng = SplitMix(state: 20_260_301)
        let ws = try Harness.minimal()
        let sim = try Simulator(workspace: ws)
        let tables = sim.state.withLock { $0.tables }
        let access = Access(ws.principals[0])
        var parsed = 0
        for _ in 0..<4000 {
            let n = Int.random(in: 1...14, using: &rng)
            let sql = (0..<n).map { _ in Self.pieces.randomElement(using: &rng)! }.joined(separator: " ")
            do {
                let stmt = try Parser.parse(sql)
                parsed += 1
                let ex = Executor(
                    tables: tables, access: access, defaultCatalog: "main", defaultSchema: "crm",
                    parameters: ["p": BoundParameter(value: "2", type: "BIGINT"), "q": BoundParameter(value: nil, type: "STRING")],
                    sql: sql)
                do {
                    let r = try ex.execute(stmt)
                    var out = ByteBuffer()
                    r.rows.renderJSON(0..<r.rows.count, into: &out)
                } catch {
                    #expect(!error.errorClass.isEmpty)
                }
            } catch {
                #expect(
                    ["PARSE_SYNTAX_ERROR", "UNCLOSED_BRACKETED_COMMENT", "UNSUPPORTED_DATATYPE", "UNSUPPORTED_FEATURE.SIMULATOR",
                     "DUPLICATED_CTE_NAMES"].contains(error.errorClass), "\(error.errorClass) for \(sql)")
            }
        }
        #expect(parsed > 0)
    }

    @Test func garbageOnTheWireIsAnsweredOrDropped() async throws {
        let h = try Harness(socket: true)
        var rng = SplitMix(state: 7)
        let samples: [[UInt8]] = [
            Array("GARBAGE\r\n\r\n".utf8),
            Array("GET / HTTP/1.1\r\nno-colon-header\r\n\r\n".utf8),
            Array("POST /api/2.0/sql/statements HTTP/1.1\r\nContent-Length: -5\r\n\r\n".utf8),
            Array("POST /api/2.0/sql/statements HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".utf8),
        ] + (0..<20).map { _ in (0..<Int.random(in: 1...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) } + [13, 10, 13, 10] }
        for bytes in samples {
            let c = try TestConnection(port: h.port)
            try? c.sendRaw(bytes)
            _ = try? c.readReply()
        }
        // Still serving.
        #expect(try await h.call("GET", "/api/2.0/sql/warehouses").status == 200)
    }
}
