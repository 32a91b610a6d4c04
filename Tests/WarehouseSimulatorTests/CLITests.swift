import CDFSyncTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs the built `dbsql-sim` (refused when older than its sources) as a child process.
@Suite struct CLITests {
    /// One line on stdout once it listens; SIGTERM and SIGINT stop it gracefully with exit 0 and nothing more on stdout.
    @Test(arguments: [SIGTERM, SIGINT])
    func printsOneLineAndStopsOnSignal(_ signal: Int32) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try BuiltProduct.dbsqlSim.path)
        p.arguments = ["--workspace", Harness.fixture("demo-workspace.json"), "--port", "0", "--synthetic", "main.bench.panel:1000"]
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read the first line.
        var line = Data()
        let handle = out.fileHandleForReading
        while !line.contains(UInt8(ascii: "\n")) {
            let d = handle.availableData
            if d.isEmpty { break }
            line.append(d)
        }
        let text = String(decoding: line, as: UTF8.self)
        #expect(text.hasPrefix("listening on http://127.0.0.1:"))
        let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":").last!)!
        let c = try TestConnection(port: port)
        let health = try c.request("GET", "/_sim/health", headers: ["Authorization": "Bearer sim-admin"])
        #expect(health.status == 200)
        #expect(health.json["tables"] as? Int == 4)
        kill(p.processIdentifier, signal)
        // Never hang the suite: give it 10 s, then kill it and fail.
        let deadline = Date().addingTimeInterval(10)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            Issue.record("dbsql-sim did not stop on signal \(signal)")
        }
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(p.terminationReason == .exit)
        let rest = handle.readDataToEndOfFile()
        #expect(rest.isEmpty, "nothing else on stdout")
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.hasSuffix("dbsql-sim: stopped (signal \(signal))\n"), "\(log)")
    }

    /// A port already taken is an error that names it, with a non-zero exit.
    @Test func aTakenPortIsAnError() throws {
        let h = try Harness(socket: true)
        let r = try ChildProcess.run(
            try BuiltProduct.dbsqlSim.path, ["--synthetic", "main.bench.panel:10", "--port", "\(h.port)"], deadline: 30)
        #expect(r.exited && r.status != 0)
        #expect(r.stdout.contains("cannot serve on 127.0.0.1:\(h.port)"), "\(r.output)")
    }
}
