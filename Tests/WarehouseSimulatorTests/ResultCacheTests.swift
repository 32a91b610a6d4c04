import Foundation
import Testing
@testable import WarehouseSimulator

/// The simulator's model of Databricks SQL's result cache (`use_cached_result`): a re-submitted query is answered
/// from the earlier result while no table changed, and the query history says so.
@Suite struct ResultCacheTests {
    /// `from_result_cache` and `cache_origin_statement_id` of a statement, from the admin interface.
    func history(_ h: Harness, _ id: String) async throws -> (cached: Bool, origin: String?) {
        let r = try await h.call("GET", "/_sim/statements/\(id)", token: "sim-admin")
        #expect(r.status == 200)
        return (r.json["from_result_cache"] as! Bool, r.json["cache_origin_statement_id"] as? String)
    }

    func id(_ r: [String: Any]) -> String { r["statement_id"] as! String }

    /// The bytes of every external-link chunk of a statement, in order.
    func files(_ h: Harness, _ r: [String: Any]) async throws -> [[UInt8]] {
        let statement = id(r)
        let total = (r["manifest"] as! [String: Any])["total_chunk_count"] as! Int
        var out: [[UInt8]] = []
        for chunk in 0..<total {
            let links = try await h.call("GET", "/api/2.0/sql/statements/\(statement)/result/chunks/\(chunk)")
            let link = (links.json["external_links"] as! [[String: Any]])[0]["external_link"] as! String
            let u = URL(string: link)!
            let file = try await h.send("GET", u.path + "?" + u.query!)
            #expect(file.status == 200)
            out.append(file.body)
        }
        return out
    }

    @Test func aRepeatedQueryIsAnsweredFromTheCacheWithTheSameBytes() async throws {
        var config = Simulator.Configuration(rowsPerChunk: 2, rowsPerExternalChunk: 2)
        config.inlineByteLimit = nil
        let h = try Harness(configuration: config)
        let sql = "SELECT * FROM table_changes('main.crm.customers', 0) ORDER BY _commit_version"
        let external = ["disposition": "EXTERNAL_LINKS"]
        let first = try await h.execute(sql, extra: external)
        #expect(try await history(h, id(first)).cached == false)
        #expect(try await history(h, id(first)).origin == nil)
        // Case, spacing and comments do not matter; the statement id is new.
        let second = try await h.execute(
            "select *  from TABLE_CHANGES('main.crm.customers', 0) -- again\n order by _commit_version", extra: external)
        #expect(id(second) != id(first))
        #expect(try await history(h, id(second)).cached == true)
        #expect(try await history(h, id(second)).origin == id(first))
        #expect(state(second) == "SUCCEEDED")
        let a = try await files(h, first), b = try await files(h, second)
        #expect(a.count > 1)
        #expect(a == b)
        #expect(second["manifest"] as? NSDictionary == first["manifest"] as? NSDictionary)

        // A different literal, disposition or row limit computes afresh.
        for (other, extra) in [
            ("SELECT * FROM table_changes('main.crm.customers', 1) ORDER BY _commit_version", external),
            (sql, [:]),
            (sql, ["disposition": "EXTERNAL_LINKS", "row_limit": 3] as [String: Any]),
        ] as [(String, [String: Any])] {
            let r = try await h.execute(other, extra: extra)
            #expect(try await history(h, id(r)).cached == false, "\(other) \(extra)")
        }
    }

    @Test func aCommitInvalidatesTheCache() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let sql = "SELECT id, email FROM main.crm.customers ORDER BY id"
        let before = try await h.rows(sql).rows
        #expect(try await history(h, id(try await h.execute(sql))).cached == true)
        let commit: [String: Any] = [
            "version": 4, "timestamp": "2026-03-04T10:00:00.000Z", "operation": "WRITE",
            "insert": [["5", "eve@example.com", "3.00", "Opted In", "2026-03-04T10:00:00.000Z"]],
        ]
        #expect(try await h.call("POST", "/_sim/tables/main.crm.customers/commits", json: commit, token: "sim-admin").status == 200)
        let after = try await h.execute(sql)
        #expect(try await history(h, id(after)).cached == false)
        #expect(try await h.rows(sql).rows == before + [["5", "eve@example.com"]])
    }

    @Test func clockDependentAndFailedStatementsAreNotCached() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        for sql in ["SELECT current_timestamp() AS t", "SELECT id, NOW() FROM main.crm.customers"] {
            _ = try await h.execute(sql)
            #expect(try await history(h, id(try await h.execute(sql))).cached == false, "\(sql)")
        }
        let bad = "SELECT nope FROM main.crm.customers"
        #expect(state(try await h.execute(bad)) == "FAILED")
        let again = try await h.execute(bad)
        #expect(state(again) == "FAILED")
        #expect(try await history(h, id(again)).cached == false)
    }

    @Test func parametersArePartOfTheKey() async throws {
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let sql = "SELECT id FROM main.crm.customers WHERE id > :lo ORDER BY id"
        func run(_ lo: String) async throws -> [String: Any] {
            try await h.execute(sql, params: [["name": "lo", "value": lo, "type": "BIGINT"]])
        }
        _ = try await run("1")
        #expect(try await history(h, id(try await run("1"))).cached == true)
        let other = try await run("2")
        #expect(try await history(h, id(other)).cached == false)
        #expect(try await h.rows(sql, params: [["name": "lo", "value": "2", "type": "BIGINT"]]).rows == [["4"]])
    }

    @Test func zeroBytesTurnsTheCacheOff() async throws {
        var config = Simulator.Configuration(rowsPerChunk: 100)
        config.resultCacheBytes = 0
        let h = try Harness(configuration: config)
        _ = try await h.execute("SELECT id FROM main.crm.customers")
        #expect(try await history(h, id(try await h.execute("SELECT id FROM main.crm.customers"))).cached == false)
        #expect(try await h.call("GET", "/_sim/statements/nope", token: "sim-admin").status == 404)
    }
}

extension ResultCacheTests {
    @Test func theCacheKeepsWithinItsBudgetDroppingTheLeastRecentlyUsed() async throws {
        let columns = [ResultColumn(name: "x", type: .string)]
        func result(_ rows: Int) -> ResultSet {
            ResultSet(columns: columns, materialized: (0..<rows).map { _ in ["v"] })
        }
        let perRow = result(1).rows.estimatedBytesPerRow
        var cache = ResultCache(limit: 10 * perRow)
        cache.insert("a", originID: "A", result: result(4), generation: 0)
        cache.insert("b", originID: "B", result: result(4), generation: 0)
        #expect(cache.lookup("a", generation: 0)?.originID == "A")  // now "b" is the least recently used
        cache.insert("c", originID: "C", result: result(4), generation: 0)
        #expect(cache.lookup("b", generation: 0) == nil)
        #expect(cache.lookup("a", generation: 0)?.originID == "A")
        #expect(cache.lookup("c", generation: 0)?.originID == "C")
        // Larger than the whole budget: not cached, nothing dropped for it.
        cache.insert("big", originID: "BIG", result: result(11), generation: 0)
        #expect(cache.lookup("big", generation: 0) == nil)
        #expect(cache.count == 2)
        // A later generation empties it; an insert from an older one is ignored.
        cache.insert("d", originID: "D", result: result(1), generation: 1)
        #expect(cache.lookup("a", generation: 1) == nil)
        cache.insert("old", originID: "OLD", result: result(1), generation: 0)
        #expect(cache.lookup("old", generation: 1) == nil)
        #expect(cache.lookup("d", generation: 1)?.originID == "D")
    }
}
