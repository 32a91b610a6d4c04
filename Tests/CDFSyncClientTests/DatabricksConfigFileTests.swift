import CDFSyncClient
import CDFSyncTestSupport
import Foundation
import Testing

/// `~/.databrickscfg` read and layered as the Databricks SDKs do: flags over environment over profile; the file is
/// read for a named profile, or for DEFAULT when nothing else configures a host or a credential.
@Suite("Databricks configuration profiles")
struct DatabricksConfigFileTests {
    static let file = """
        ; written by databricks configure
        [DEFAULT]
        host  = https://dbc-default.cloud.databricks.com
        token = dapi-default-token

        [research]
        host = https://dbc-research.cloud.databricks.com/
        Client_ID: 6f2c-client
        client_secret = dose-research-secret
        warehouse_id = 8a1c2f3d4e5b6a70

        # a PAT profile with an HTTP path
        [pat]
        host = dbc-pat.cloud.databricks.com
        token = dapi-pat-token
        http_path = /sql/1.0/warehouses/0123456789abcdef
        """

    /// A HOME holding `text` as .databrickscfg, and an environment that points at it (the directory lives as long
    /// as the value).
    struct Home {
        let dir: TempDir
        var env: [String: String]
    }

    func home(_ text: String? = Self.file) throws -> Home {
        let dir = TempDir()
        if let text { try text.write(toFile: dir.sub(".databrickscfg"), atomically: true, encoding: .utf8) }
        return Home(dir: dir, env: ["HOME": dir.path])
    }

    @Test func parsesSectionsKeysAndComments() throws {
        let f = try DatabricksConfigFile.parse(Self.file, path: "cfg")
        #expect(f.profileNames == ["DEFAULT", "research", "pat"])
        #expect(f.profile("research")?["client_id"] == "6f2c-client")
        #expect(f.profile("research")?["host"] == "https://dbc-research.cloud.databricks.com/")
        #expect(f.profile("DEFAULT")?["warehouse_id"] == nil, "DEFAULT is not merged into other profiles, nor they into it")
        #expect(f.profile("research")?["token"] == nil)
        #expect(f.profile("nope") == nil)
    }

    @Test(arguments: [
        ("host = x", "line 1: `host` comes before any [profile] section"),
        ("[a]\njust words", "line 2: expected `key = value`"),
        ("[a]\nhost = x\n[a]", "line 3: profile [a] is defined twice"),
        ("[]", "line 1: a section header is [name]"),
    ])
    func namesTheBadLine(text: String, message: String) {
        #expect {
            try DatabricksConfigFile.parse(text, path: "cfg")
        } throws: { error in
            "\(error)".contains("cfg, \(message)")
        }
    }

    @Test func aNamedProfileGivesHostCredentialAndWarehouse() throws {
        let h = try home()
        defer { withExtendedLifetime(h) {} }
        let env = h.env
        let c = try DatabricksUnifiedConfig.resolve(.init(profile: "research"), environment: env)
        #expect(c.host?.value == "https://dbc-research.cloud.databricks.com/")
        #expect(c.host?.source == .profile(name: "research", file: "~/.databrickscfg"))
        #expect(c.warehouseID?.value == "8a1c2f3d4e5b6a70")
        guard case .oauthM2M(let id, let secret, _) = try c.authentication() else {
            Issue.record("expected OAuth M2M")
            return
        }
        #expect(id == "6f2c-client" && secret.reveal() == "dose-research-secret")
    }

    @Test func theProfileComesFromTheEnvironmentToo() throws {
        let h = try home()
        defer { withExtendedLifetime(h) {} }
        var env = h.env
        env["DATABRICKS_CONFIG_PROFILE"] = "pat"
        let c = try DatabricksUnifiedConfig.resolve(.init(), environment: env)
        #expect(c.httpPath?.value == "/sql/1.0/warehouses/0123456789abcdef")
        guard case .personalAccessToken(let t) = try c.authentication() else {
            Issue.record("expected a token")
            return
        }
        #expect(t.reveal() == "dapi-pat-token")
        // The flag names the profile over the variable.
        let flag = try DatabricksUnifiedConfig.resolve(.init(profile: "research"), environment: env)
        #expect(flag.profile?.name == "research")
    }

    @Test func flagsWinOverEnvironmentWhichWinsOverTheProfile() throws {
        let h = try home()
        defer { withExtendedLifetime(h) {} }
        var env = h.env
        env["DATABRICKS_HOST"] = "https://dbc-env.cloud.databricks.com"
        env["DATABRICKS_TOKEN"] = "dapi-env-token"
        env["DATABRICKS_WAREHOUSE_ID"] = "feedfeedfeedfeed"
        let c = try DatabricksUnifiedConfig.resolve(.init(profile: "pat"), environment: env)
        #expect(c.host?.value == "https://dbc-env.cloud.databricks.com" && c.host?.source == .environment("DATABRICKS_HOST"))
        #expect(c.token?.value.reveal() == "dapi-env-token")
        #expect(c.warehouseID?.value == "feedfeedfeedfeed" && c.httpPath == nil,
            "a warehouse from the environment is not mixed with the profile's http_path")
        let flags = try DatabricksUnifiedConfig.resolve(
            .init(profile: "pat", host: "https://dbc-flag.cloud.databricks.com", httpPath: "/sql/1.0/warehouses/abc"),
            environment: env)
        #expect(flags.host?.source == .flag("--host"))
        #expect(flags.httpPath?.value == "/sql/1.0/warehouses/abc" && flags.warehouseID == nil)
    }

    @Test func defaultIsReadOnlyWhenNothingElseConfiguresHostOrCredential() throws {
        let h = try home()
        defer { withExtendedLifetime(h) {} }
        var env = h.env
        let bare = try DatabricksUnifiedConfig.resolve(.init(), environment: env)
        #expect(bare.profile?.name == "DEFAULT" && bare.token?.value.reveal() == "dapi-default-token")
        env["DATABRICKS_TOKEN"] = "dapi-env-token"
        let withToken = try DatabricksUnifiedConfig.resolve(.init(), environment: env)
        #expect(withToken.profile == nil && withToken.host == nil, "a credential in the environment skips the file")
        let withHost = try DatabricksUnifiedConfig.resolve(.init(host: "https://h.cloud.databricks.com"),
            environment: ["HOME": h.dir.path])
        #expect(withHost.profile == nil && withHost.token == nil, "a host flag skips the file")
    }

    @Test func noFileOrNoDefaultIsNothingToReadButANamedProfileMustExist() throws {
        let noFile = try home(nil)
        defer { withExtendedLifetime(noFile) {} }
        let none = noFile.env
        #expect(try DatabricksUnifiedConfig.resolve(.init(), environment: none).profile == nil)
        #expect { try DatabricksUnifiedConfig.resolve(.init(profile: "research"), environment: none) } throws: {
            "\($0)".contains("profile research (--profile) was asked for, but there is no ~/.databrickscfg")
        }
        let onlyOne = try home("[only]\nhost = h\n")
        defer { withExtendedLifetime(onlyOne) {} }
        let noDefault = onlyOne.env
        #expect(try DatabricksUnifiedConfig.resolve(.init(), environment: noDefault).profile == nil)
        #expect { try DatabricksUnifiedConfig.resolve(.init(profile: "other"), environment: noDefault) } throws: {
            "\($0)".contains("~/.databrickscfg has no other profile (--profile)") && "\($0)".contains("only")
        }
    }

    @Test func theConfigFileVariableNamesAnotherFile() throws {
        let empty = try home(nil)
        defer { withExtendedLifetime(empty) {} }
        let dir = empty.dir
        try "[ci]\nhost = https://ci.cloud.databricks.com\ntoken = dapi-ci\n".write(
            toFile: dir.sub("ci.cfg"), atomically: true, encoding: .utf8)
        let c = try DatabricksUnifiedConfig.resolve(.init(profile: "ci"),
            environment: ["HOME": dir.path, "DATABRICKS_CONFIG_FILE": dir.sub("ci.cfg")])
        #expect(c.host?.value == "https://ci.cloud.databricks.com")
        #expect(c.host?.source == .profile(name: "ci", file: "~/ci.cfg"))
    }

    @Test func aTokenAndAnOAuthClientAreTwoMethodsUnlessAuthTypePicksOne() throws {
        let h = try home()
        defer { withExtendedLifetime(h) {} }
        var env = h.env
        env["DATABRICKS_TOKEN"] = "dapi-env-token"
        #expect { try DatabricksUnifiedConfig.resolve(.init(profile: "research"), environment: env) } throws: {
            "\($0)".contains("more than one authorization method configured: a token (DATABRICKS_TOKEN) and an "
                + "OAuth client (profile research in ~/.databrickscfg)")
        }
        env["DATABRICKS_AUTH_TYPE"] = "oauth-m2m"
        let oauth = try DatabricksUnifiedConfig.resolve(.init(profile: "research"), environment: env)
        guard case .oauthM2M = try oauth.authentication() else {
            Issue.record("auth_type oauth-m2m picks the client")
            return
        }
        env["DATABRICKS_AUTH_TYPE"] = "pat"
        let pat = try DatabricksUnifiedConfig.resolve(.init(profile: "research"), environment: env)
        guard case .personalAccessToken = try pat.authentication() else {
            Issue.record("auth_type pat picks the token")
            return
        }
        env["DATABRICKS_AUTH_TYPE"] = "azure-cli"
        #expect(throws: DatabricksError.self) {
            try DatabricksUnifiedConfig.resolve(.init(profile: "research"), environment: env)
        }
    }

    @Test func noCredentialNamesWhereItWasLookedFor() throws {
        let h = try home("[bare]\nhost = https://h.cloud.databricks.com\n")
        defer { withExtendedLifetime(h) {} }
        let env = h.env
        let c = try DatabricksUnifiedConfig.resolve(.init(profile: "bare", tokenVariable: "MY_TOKEN"), environment: env)
        #expect { try c.authentication(tokenVariable: "MY_TOKEN") } throws: {
            "\($0)".contains("no credential found") && "\($0)".contains("MY_TOKEN") && "\($0)".contains("--profile")
        }
    }

    @Test func secretsFromTheProfileNeverPrint() throws {
        let h = try home()
        defer { withExtendedLifetime(h) {} }
        let env = h.env
        let c = try DatabricksUnifiedConfig.resolve(.init(profile: "research"), environment: env)
        let shown = "\(c.clientSecret as Any) \(String(describing: c.token)) \(try c.authentication())"
        #expect(!shown.contains("dose-research-secret"), "\(shown)")
    }
}
