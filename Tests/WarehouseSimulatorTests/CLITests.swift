import Foundation
import Testing

/// Runs the built `dbsql-sim` binary (skipped when it has not been built).
@Suite struct CLITests {
    static var binary: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/dbsql-sim").path
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: CLITests.binary)))
    func printsOneLineAndStopsOnSIGTERM() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
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
        p.terminate()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(p.terminationReason == .exit)
        let rest = handle.readDataToEndOfFile()
        #expect(rest.isEmpty, "nothing else on stdout")
    }
}
