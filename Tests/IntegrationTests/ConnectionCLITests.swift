import CDFSyncClient
import CDFSyncTestSupport
import Foundation
import Testing

struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var all: String { stdout + stderr }
}

/// Runs the built `cdfsync` with `args` in a clean environment (`PATH`, `HOME`, then `env`), its standard output
/// and error kept apart, `stdin` (or nothing) on its standard input.
func runCLI(_ args: [String], env: [String: String], stdin: String? = nil) throws -> CLIResult {
    // A clean environment: nothing from the developer's shell leaks in.
    var environment = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
    environment.merge(env) { $1 }
    let r = try ChildProcess.run(
        try BuiltProduct.cdfsync.path, args, environment: environment, stdin: stdin ?? "", mergeOutput: false)
    return CLIResult(status: r.status, stdout: r.stdout, stderr: r.stderr)
}

@Suite("cdfsync connection and discover commands (built binary, simulator)")
struct ConnectionCLITests {
    @Test func addListTestDiscoverRemove() throws {
        let h = try SimHarness()
        let dir = makeConfigDirectory()
        let env = ["CDFSYNC_CONFIG_DIR": dir]
        let token = "dapi-good"

        let add = try runCLI(["connection", "add", "sim", "--host", h.host, "--warehouse-id", runningWarehouse,
            "--catalog", "main", "--secret-stdin"], env: env, stdin: token + "\n")
        #expect(add.status == 0, "\(add.all)")
        #expect(!add.all.contains(token))
        let addEnv = try runCLI(["connection", "add", "byenv", "--host", h.host,
            "--http-path", "/sql/1.0/warehouses/\(runningWarehouse)", "--token-env", "SIM_TOKEN"], env: env)
        #expect(addEnv.status == 0, "\(addEnv.all)")
        let dup = try runCLI(["connection", "add", "sim", "--host", h.host, "--warehouse-id", runningWarehouse],
            env: env)
        #expect(dup.status != 0)
        #expect(dup.stderr.contains("already exists"))

        let list = try runCLI(["connection", "list"], env: env)
        #expect(list.status == 0)
        #expect(list.stdout.contains("sim"))
        #expect(list.stdout.contains("stored (encrypted)"))
        #expect(list.stdout.contains("env SIM_TOKEN"))
        #expect(!list.all.contains(token))
        let listJSON = try runCLI(["connection", "list", "--json"], env: env)
        #expect(listJSON.stdout.contains("\"format\":\"cdfsync-connections/1\""))
        #expect(!listJSON.all.contains(token))

        let ok = try runCLI(["connection", "test", "sim"], env: env)
        #expect(ok.status == 0, "\(ok.all)")
        #expect(ok.stdout.contains("✓ catalogs visible"))
        #expect(ok.stdout.contains("all checks passed"))
        #expect(!ok.all.contains(token))

        // The environment reference is read at use time; a wrong value fails at "authenticated", exit 1.
        let bad = try runCLI(["connection", "test", "byenv"], env: env.merging(["SIM_TOKEN": "dapi-wrong"]) { $1 })
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("✗ authenticated"))
        #expect(bad.stdout.contains("authentication failed:"))
        #expect(bad.stdout.contains("remedy:"))
        #expect(!bad.all.contains("dapi-wrong"))
        let unset = try runCLI(["connection", "test", "byenv"], env: env)
        #expect(unset.status != 0)
        #expect(unset.stderr.contains("SIM_TOKEN"))

        // Plain flags and environment, no saved connection.
        let flags = try runCLI(["connection", "test", "--host", h.host, "--warehouse-id", runningWarehouse],
            env: ["DATABRICKS_TOKEN": token, "CDFSYNC_CONFIG_DIR": dir])
        #expect(flags.status == 0, "\(flags.all)")

        let discover = try runCLI(["discover", "sim", "--schema", "crm", "--json"], env: env)
        #expect(discover.status == 0, "\(discover.all)")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(discover.stdout.utf8)) as? [String: Any])
        #expect(root["format"] as? String == "cdfsync-discovery/1")
        let tree = try runCLI(["discover", "--connection", "sim", "--catalog", "other"], env: env)
        #expect(tree.status == 0, "\(tree.all)")
        #expect(tree.stdout.hasPrefix("other/\n  s/\n    t1  [MANAGED, DELTA, CDF off, version 0]"))

        let both = try runCLI(["discover", "sim", "--host", h.host], env: env)
        #expect(both.status != 0)
        #expect(both.stderr.contains("were both given"))

        let remove = try runCLI(["connection", "remove", "sim"], env: env)
        #expect(remove.status == 0)
        let after = try runCLI(["connection", "list"], env: env)
        #expect(!after.stdout.contains("stored (encrypted)"))
        let gone = try runCLI(["connection", "test", "sim"], env: env)
        #expect(gone.status != 0)
        #expect(gone.stderr.contains("no saved connection named 'sim'"))
    }

    @Test func oauthConnectionOnAColdWarehouse() throws {
        let h = try SimHarness()
        let dir = makeConfigDirectory()
        let env = ["CDFSYNC_CONFIG_DIR": dir, "CDFSYNC_SECRET_KEY": keyText(3)]
        let add = try runCLI(["connection", "add", "sp", "--host", h.host, "--warehouse-id", coldWarehouse,
            "--auth", "oauth-m2m", "--client-id", "sp-client", "--secret-stdin"], env: env, stdin: "sp-secret")
        #expect(add.status == 0, "\(add.all)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/secret.key"))
        let list = try runCLI(["connection", "list"], env: env)
        #expect(list.stdout.contains("oauth-m2m (sp-client)"))
        #expect(!list.all.contains("sp-secret"))

        let noStart = try runCLI(["connection", "test", "sp", "--no-start-warehouse"], env: env)
        #expect(noStart.status == 1)
        #expect(noStart.stdout.contains("✗ warehouse running"))
        #expect(noStart.stdout.contains("warehouse stopped:"))

        let started = try runCLI(["connection", "test", "sp"], env: env)
        #expect(started.status == 0, "\(started.all)")
        #expect(started.stdout.contains("started, RUNNING after"))
        #expect(started.stderr.contains("warehouse starting ("))
        #expect(!started.all.contains("sp-secret"))

        // Another key cannot decrypt the stored client secret.
        let wrongKey = try runCLI(["connection", "test", "sp"], env: env.merging(["CDFSYNC_SECRET_KEY": keyText(4)]) { $1 })
        #expect(wrongKey.status != 0)
        #expect(wrongKey.stderr.contains("cannot decrypt the stored secret of connection 'sp'"))
    }

    @Test func keyFileWithLooseModeIsRefusedByTheCLI() throws {
        let dir = makeConfigDirectory()
        let env = ["CDFSYNC_CONFIG_DIR": dir]
        let add = try runCLI(["connection", "add", "x", "--host", "dbc-1.cloud.databricks.com", "--warehouse-id",
            "abc", "--secret-stdin"], env: env, stdin: "dapi-x")
        #expect(add.status == 0, "\(add.all)")
        try FileManager.default.setAttributes([.posixPermissions: 0o644],
            ofItemAtPath: dir + "/secret.key")
        let test = try runCLI(["connection", "test", "x"], env: env)
        #expect(test.status != 0)
        #expect(test.stderr.contains("refusing the key file"))
        #expect(test.stderr.contains("chmod 600"))
    }

    @Test func connectionRefusedExitsNonZero() throws {
        let r = try runCLI(["connection", "test", "--host", "http://127.0.0.1:1", "--warehouse-id", runningWarehouse],
            env: ["DATABRICKS_TOKEN": "dapi-good"])
        #expect(r.status == 1)
        #expect(r.stdout.contains("✗ host reachable"))
        #expect(r.stdout.contains("host unreachable:"))
    }
}
