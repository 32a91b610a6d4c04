import CDFSyncTestSupport
import Foundation
import Testing
@testable import WarehouseSimulator

/// Compares the simulator's responses with the recorded real exchanges in
/// `Tests/CDFSyncCoreTests/Fixtures/recorded-sea` (set `CDFSYNC_RECORDINGS` to another copy): same keys, same JSON
/// value types, same nesting.
@Suite struct ConformanceTests {
    static var dir: String {
        ProcessInfo.processInfo.environment["CDFSYNC_RECORDINGS"]
            ?? repositoryRoot.appendingPathComponent("Tests/CDFSyncCoreTests/Fixtures/recorded-sea").path
    }

    static func recorded(_ name: String) throws -> [String: Any] {
        let d = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))) as! [String: Any]
        return d["response"] as! [String: Any]
    }

    /// A type signature: object keys with the signature of each value; arrays by their first element.
    static func shape(_ v: Any, ignoring: Set<String> = []) -> String {
        switch v {
        case let d as [String: Any]:
            return "{" + d.keys.filter { !ignoring.contains($0) }.sorted().map { "\($0):\(shape(d[$0]!, ignoring: ignoring))" }.joined(separator: ",") + "}"
        case let a as [Any]: return "[" + (a.first.map { shape($0, ignoring: ignoring) } ?? "") + "]"
        case is NSNull: return "string?"  // JSON_ARRAY cells are strings or null
        case let n as NSNumber: return String(cString: n.objCType) == "c" ? "bool" : "number"
        case is String: return "string?"
        default: return "?"
        }
    }

    @Test
    func inlineResultMatchesRecording() async throws {
        let rec = try Self.recorded("execute-inline-json-null-and-int.json")["body"] as! [String: Any]
        let h = try Harness(configuration: .init(rowsPerChunk: 100))
        let ours = try await h.execute("SELECT id FROM main.crm.legacy")
        #expect(Self.shape(ours) == Self.shape(rec))
    }

    @Test
    func emptyAndPendingAndFailedMatchRecordings() async throws {
        let clock = SimulatorClock.manual()
        let h = try Harness(configuration: .init(includeSQLState: false, executionDelay: 5), clock: clock)
        // Empty result (the recording is Arrow: it adds total_byte_count and result_compression).
        let empty = try Self.recorded("execute-empty-result-select.json")["body"] as! [String: Any]
        let pending = try await h.execute("SELECT * FROM main.crm.customers VERSION AS OF 0", extra: ["wait_timeout": "0s"])
        #expect(Self.shape(pending) == Self.shape(try Self.recorded("status-running.json")["body"]!))
        clock.advance(seconds: 5)
        let done = try await h.call("GET", "/api/2.0/sql/statements/\(pending["statement_id"]!)").json
        #expect(Self.shape(done) == Self.shape(empty, ignoring: ["total_byte_count", "result_compression"]))
        // External links: the same manifest keys as the Arrow recording but result_compression.
        let ext = try await h.execute("SELECT * FROM main.crm.customers VERSION AS OF 0", extra: ["disposition": "EXTERNAL_LINKS"])
        clock.advance(seconds: 5)
        let extDone = try await h.call("GET", "/api/2.0/sql/statements/\(ext["statement_id"]!)").json
        #expect(Self.shape(extDone) == Self.shape(empty, ignoring: ["result_compression"]))
        // Syntax error, sql_state off as in the recording.
        let failed = try Self.recorded("failed-parse-syntax.json")["body"] as! [String: Any]
        let ours = try await h.execute("INSER INTO x VALUES (1)")
        clock.advance(seconds: 5)
        let oursDone = try await h.call("GET", "/api/2.0/sql/statements/\(ours["statement_id"]!)").json
        #expect(Self.shape(oursDone) == Self.shape(failed))
        let recMessage = ((failed["status"] as! [String: Any])["error"] as! [String: Any])["message"] as! String
        #expect(errorMessage(oursDone) == recMessage.replacingOccurrences(
            of: "INSER INTO main.jdbc_test_schema.query_syntax_error_test_table (id, col1, col2) VALUES (1, 'value1', 'value2')",
            with: "INSER INTO x VALUES (1)"))
    }

    @Test
    func externalLinkChunksMatchRecording() async throws {
        let first = try Self.recorded("execute-external-links-arrow-multichunk-0.json")["body"] as! [String: Any]
        let second = try Self.recorded("chunk-external-links-arrow-1.json")["body"] as! [String: Any]
        let h = try Harness(configuration: .init(rowsPerExternalChunk: 2))
        let r = try await h.execute("SELECT id FROM main.crm.customers", extra: ["disposition": "EXTERNAL_LINKS"])
        #expect(Self.shape(r["result"]!) == Self.shape(first["result"]!))
        #expect(Self.shape(r["manifest"]!, ignoring: ["columns"]) == Self.shape(first["manifest"]!, ignoring: ["columns", "result_compression"]))
        let c = try await h.call("GET", "/api/2.0/sql/statements/\(r["statement_id"]!)/result/chunks/1").json
        #expect(Self.shape(c) == Self.shape(second))
        let recKeys = ((first["result"] as! [String: Any])["external_links"] as! [[String: Any]])[0].keys.sorted()
        #expect(((r["result"] as! [String: Any])["external_links"] as! [[String: Any]])[0].keys.sorted() == recKeys)
    }

    @Test
    func authErrorsMatchRecordings() async throws {
        let h = try Harness()
        for (file, token) in [("error-missing-credential-401.json", nil), ("error-invalid-token-403.json", "dapi-nope")] as [(String, String?)] {
            let rec = try Self.recorded(file)
            let reply = try await h.send("POST", "/api/2.0/sql/statements/", headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:], body: Array("{}".utf8))
            #expect(reply.status == rec["status"] as? Int)
            let body = rec["body"] as! [String: Any]
            #expect(reply.json["error_code"] as? Int == body["error_code"] as? Int)
            #expect(reply.json["message"] as? String == body["message"] as? String)
            let headers = rec["headers"] as! [String: String]
            for name in ["www-authenticate", "x-databricks-reason-phrase", "content-type"] {
                #expect(reply.header(name) == headers[name], "\(file) \(name)")
            }
        }
        let close = try Self.recorded("close-statement-delete.json")
        let id = try await h.execute("SELECT 1")["statement_id"] as! String
        let deleted = try await h.call("DELETE", "/api/2.0/sql/statements/\(id)")
        #expect(deleted.status == close["status"] as? Int)
        #expect(Self.shape(deleted.json) == Self.shape(close["body"]!))
    }

    @Test
    func oidcDiscoveryHasTheRecordedKeys() async throws {
        let rec = try Self.recorded("oidc-discovery.json")["body"] as! [String: Any]
        let h = try Harness()
        let ours = try await h.call("GET", "/oidc/.well-known/oauth-authorization-server").json
        #expect(ours.keys.sorted() == rec.keys.sorted())
        #expect(Set(ours["scopes_supported"] as! [String]) == Set(rec["scopes_supported"] as! [String]))
    }
}
