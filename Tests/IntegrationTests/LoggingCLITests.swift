import CDFSyncTestSupport
import Foundation
import Testing

/// Logging through swift-log: --log-level / CDFSYNC_LOG_LEVEL / --quiet choose how much, --log-format json gives
/// JSON lines; and at the most detailed level no secret appears anywhere — stdout, stderr, or a file of the state
/// and output directories.
@Suite("CLI: logging")
struct LoggingCLITests {
    static let table = ["--table", "main.research.participants", "--key", "participant_id"]

    func connection(_ sim: RunningSimulator, _ dir: TempDir) -> [String] {
        ["--host", sim.baseURL, "--warehouse-id", "8a1c2f3d4e5b6a70", "--state-dir", dir.sub("state"),
         "--output-dir", dir.sub("out")]
    }

    /// Every file under `directory` holding `needle` (its bytes, whatever the file's format).
    func files(under directory: String, containing needle: String) -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: directory)
        var found: [String] = []
        while let name = enumerator?.nextObject() as? String {
            let path = directory + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            if data.range(of: Data(needle.utf8)) != nil { found.append(name) }
        }
        return found
    }

    @Test func secretsAreNeverLoggedEvenAtTrace() throws {
        let sim = try RunningSimulator()
        let token = "dapi-demo-token"
        let clientSecret = "dose-demo-secret"
        let dir = TempDir("log-secrets")
        var outputs: [(String, CLIResult)] = []

        // A personal access token from the environment, text and JSON log lines.
        let pat = try runCLI(["sync"] + Self.table + connection(sim, dir) + ["--log-level", "trace"],
            env: ["DATABRICKS_TOKEN": token, "HOME": dir.path])
        #expect(pat.status == 0, "\(pat.all)")
        outputs.append(("pat", pat))
        let json = try runCLI(["replay"] + Self.table + connection(sim, dir)
                + ["--from-version", "1", "--log-level", "trace", "--log-format", "json"],
            env: ["DATABRICKS_TOKEN": token, "HOME": dir.path])
        #expect(json.status == 0, "\(json.all)")
        outputs.append(("json", json))

        // OAuth M2M: the client secret, and the access token it is exchanged for, from the environment.
        let oauthDir = TempDir("log-secrets-oauth")
        let oauth = try runCLI(["sync"] + Self.table + connection(sim, oauthDir) + ["--log-level", "trace"],
            env: ["DATABRICKS_CLIENT_ID": "6f2d0a8e-4b1c-4d2e-9f3a-7c5b1e0d9a42", "DATABRICKS_CLIENT_SECRET": clientSecret,
                  "HOME": oauthDir.path])
        #expect(oauth.status == 0, "\(oauth.all)")
        outputs.append(("oauth", oauth))

        // A saved connection whose token is stored encrypted, and a ~/.databrickscfg profile.
        let config = makeConfigDirectory()
        let saved = try runCLI(["connection", "add", "sim", "--host", sim.baseURL, "--warehouse-id", "8a1c2f3d4e5b6a70",
                                "--secret-stdin"], env: ["CDFSYNC_CONFIG_DIR": config], stdin: token)
        #expect(saved.status == 0, "\(saved.all)")
        let savedDir = TempDir("log-secrets-saved")
        let viaSaved = try runCLI(["sync"] + Self.table + ["--connection", "sim", "--state-dir", savedDir.sub("state"),
                                   "--output-dir", savedDir.sub("out"), "--log-level", "trace"],
            env: ["CDFSYNC_CONFIG_DIR": config])
        #expect(viaSaved.status == 0, "\(viaSaved.all)")
        outputs.append(("saved", viaSaved))
        let test = try runCLI(["connection", "test", "sim", "--log-level", "trace"], env: ["CDFSYNC_CONFIG_DIR": config])
        #expect(test.status == 0, "\(test.all)")
        outputs.append(("test", test))
        // (The profile file holds the secret: it is the input, in a HOME of its own, not among the files checked.)
        let home = TempDir("log-secrets-home")
        try "[p]\nhost = \(sim.baseURL)\nclient_id = 6f2d0a8e-4b1c-4d2e-9f3a-7c5b1e0d9a42\nclient_secret = \(clientSecret)\n"
            .write(toFile: home.sub(".databrickscfg"), atomically: true, encoding: .utf8)
        let profile = try runCLI(["discover", "--profile", "p", "--warehouse-id", "8a1c2f3d4e5b6a70", "--log-level", "trace"],
            env: ["HOME": home.path])
        #expect(profile.status == 0, "\(profile.all)")
        outputs.append(("profile", profile))

        for (name, r) in outputs {
            for secret in [token, clientSecret, "Bearer ", "access_token", "Authorization"] {
                #expect(!r.all.contains(secret), "\(name) printed \(secret)")
            }
        }
        for d in [dir, oauthDir, savedDir] {
            for secret in [token, clientSecret] {
                #expect(files(under: d.path, containing: secret) == [], "\(secret) in a file under \(d.path)")
            }
        }
        #expect(files(under: config, containing: token) == [], "the saved token is stored encrypted")

        // Not vacuous: trace shows every request and statement, with the run's metadata.
        #expect(pat.stderr.contains(#/trace cdfsync\.client: POST /api/2\.0/sql/statements → HTTP 200 .*run_id=1/#),
            "\(pat.stderr)")
        #expect(pat.stderr.contains(#/debug cdfsync\.client: statement [\w-]+ submitted/#), "\(pat.stderr)")
        #expect(oauth.stderr.contains("POST /api/2.0/sql/statements → HTTP 200"), "\(oauth.stderr)")
        let lines = json.stderr.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["level"] is String && object?["message"] is String && object?["timestamp"] is String,
                "not a JSON log line: \(line)")
        }
        #expect(json.stderr.contains(#""label":"cdfsync.engine""#) && json.stderr.contains(#""run_id":"2""#),
            "\(json.stderr)")
    }

    @Test func levelsQuietAndTheEnvironment() throws {
        let sim = try RunningSimulator()
        let env = ["DATABRICKS_TOKEN": "dapi-demo-token"]
        func sync(_ extra: [String], env more: [String: String] = [:]) throws -> CLIResult {
            let dir = TempDir("log-levels")
            return try runCLI(["sync"] + Self.table + connection(sim, dir) + ["--no-progress"] + extra,
                env: env.merging(more) { $1 })
        }
        let plain = try sync([])
        #expect(plain.status == 0 && plain.stderr.isEmpty, "notice by default: nothing to say: \(plain.stderr)")

        let info = try sync(["--log-level", "info"])
        #expect(info.stderr.contains(#/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info cdfsync\.engine: reading v0…v\d+ /#),
            "\(info.stderr)")
        #expect(info.stderr.contains(#/info cdfsync\.engine: applied \d+ changes \(checkpoint v6\) /#), "\(info.stderr)")
        #expect(!info.stderr.contains(" debug ") && !info.stderr.contains(" trace "), "\(info.stderr)")
        #expect(try sync(["--verbose"]).stderr.contains("info cdfsync.engine: reading v0"), "--verbose is info")

        let debug = try sync([], env: ["CDFSYNC_LOG_LEVEL": "debug"])
        #expect(debug.stderr.contains("debug cdfsync.client: statement "), "\(debug.stderr)")
        #expect(!debug.stderr.contains(" trace "), "\(debug.stderr)")
        let flagWins = try sync(["--log-level", "warning"], env: ["CDFSYNC_LOG_LEVEL": "debug"])
        #expect(flagWins.stderr.isEmpty, "\(flagWins.stderr)")

        let badEnv = try sync([], env: ["CDFSYNC_LOG_LEVEL": "loud"])
        #expect(badEnv.status == 64 && badEnv.stderr.contains("CDFSYNC_LOG_LEVEL=loud is not a level"), "\(badEnv.all)")
        let both = try sync(["--quiet", "--log-level", "info"])
        #expect(both.status == 64 && both.stderr.contains("give --quiet or --log-level info, not both"), "\(both.all)")

        // --quiet: a failed run logs its error and nothing else; the run's own error line still says why.
        let quietDir = TempDir("log-quiet")
        let failed = try runCLI(["sync", "--table", "main.research.no_such_table", "--key", "participant_id", "--quiet"]
            + connection(sim, quietDir), env: env)
        #expect(failed.status == 1, "\(failed.all)")
        let logged = failed.stderr.split(separator: "\n").filter { $0.contains(" cdfsync.") }
        #expect(!logged.isEmpty && logged.allSatisfy { $0.contains(" error cdfsync.engine: run 1 failed") }, "\(failed.stderr)")
        #expect(failed.stderr.contains("error: "), "\(failed.stderr)")
    }
}
