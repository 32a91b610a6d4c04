import CDFSyncClient
import CDFSyncEngine
import CDFSyncTestSupport
import Foundation
import Testing

func fileMode(_ path: String) throws -> Int {
    let attrs = try FileManager.default.attributesOfItem(atPath: path)
    return (attrs[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

func bytes(of path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
    let n = Array(needle.utf8)
    guard !n.isEmpty, haystack.count >= n.count else { return false }
    for i in 0...(haystack.count - n.count) where haystack[i] == n[0] {
        if Array(haystack[i..<(i + n.count)]) == n { return true }
    }
    return false
}

@Suite("Saved connections and encrypted secrets")
struct ConnectionStoreTests {
    let secretToken = "dapi-CANARY-7f3a9c1e5b2d4f6a8c0e"

    func pat(_ name: String = "prod", secret: SavedConnection.SecretSource = .encrypted) throws -> SavedConnection {
        try SavedConnection(name: name, host: "dbc-1.cloud.databricks.com", warehouseID: "8a1c2f3d4e5b6a70",
            catalog: "main", schema: "crm", auth: .pat, secret: secret)
    }

    @Test func encryptedRoundTripWithAKeyFileCreatedMode0600() throws {
        let dir = makeConfigDirectory()
        let keyPath = SecretCipher.keyFilePath(directory: dir)
        do {
            let store = try ConnectionStore(directory: dir, environment: [:])
            try store.add(try pat(), secret: Secret(secretToken))
            #expect(try store.hasStoredSecret("prod"))
        }
        #expect(FileManager.default.fileExists(atPath: keyPath))
        #expect(try fileMode(keyPath) == 0o600)
        // Reopen: the secret decrypts with the key file.
        let store = try ConnectionStore(directory: dir, environment: [:])
        let settings = try store.resolve("prod")
        guard case .personalAccessToken(let token) = settings.authentication else {
            Issue.record("expected a PAT")
            return
        }
        #expect(token.reveal() == secretToken)
        #expect(settings.baseURL == "https://dbc-1.cloud.databricks.com")
        #expect(settings.warehouseID == "8a1c2f3d4e5b6a70")
        #expect(settings.catalog == "main")
        #expect(settings.schema == "crm")
    }

    @Test func oauthClientSecretRoundTripWithTheEnvironmentKey() throws {
        let dir = makeConfigDirectory()
        let env = [SecretCipher.keyVariable: keyText(7)]
        let store = try ConnectionStore(directory: dir, environment: env)
        let conn = try SavedConnection(name: "sp", host: "https://adb-42.azuredatabricks.net", warehouseID: "abc123",
            auth: .oauthM2M, clientID: "6f2d0a8e", secret: .encrypted)
        try store.add(conn, secret: Secret("sp-secret-value"))
        // No key file: the key came from the environment.
        #expect(!FileManager.default.fileExists(atPath: SecretCipher.keyFilePath(directory: dir)))
        let settings = try store.resolve("sp")
        guard case .oauthM2M(let id, let secret, _) = settings.authentication else {
            Issue.record("expected OAuth M2M")
            return
        }
        #expect(id == "6f2d0a8e")
        #expect(secret.reveal() == "sp-secret-value")
    }

    @Test func wrongKeyGivesAClearError() throws {
        let dir = makeConfigDirectory()
        do {
            let store = try ConnectionStore(directory: dir, environment: [SecretCipher.keyVariable: keyText(1)])
            try store.add(try pat(), secret: Secret(secretToken))
        }
        let store = try ConnectionStore(directory: dir, environment: [SecretCipher.keyVariable: keyText(2)])
        let error = #expect(throws: DatabricksError.self) { try store.resolve("prod") }
        #expect(error?.category == .configuration)
        #expect(error?.message.contains("cannot decrypt the stored secret of connection 'prod'") == true)
        #expect(error?.message.contains("CDFSYNC_SECRET_KEY") == true)
        #expect(error?.remedy.contains("--replace") == true)
        #expect(!"\(String(describing: error))".contains(secretToken))

        // A malformed key is refused up front.
        let bad = try #require(throws: DatabricksError.self) {
            _ = try SecretCipher.load(directory: dir, environment: [SecretCipher.keyVariable: "c2hvcnQ="], create: false)
        }
        #expect(bad.message.contains("not base64 of 32 bytes"))
    }

    @Test func missingKeyFileIsReported() throws {
        let dir = makeConfigDirectory()
        do {
            let store = try ConnectionStore(directory: dir, environment: [:])
            try store.add(try pat(), secret: Secret(secretToken))
        }
        try FileManager.default.removeItem(atPath: SecretCipher.keyFilePath(directory: dir))
        let store = try ConnectionStore(directory: dir, environment: [:])
        let error = try #require(throws: DatabricksError.self) { try store.resolve("prod") }
        #expect(error.message.contains("no secret key"))
    }

    @Test func keyFileReadableByOthersIsRefused() throws {
        let dir = makeConfigDirectory()
        let keyPath = SecretCipher.keyFilePath(directory: dir)
        do {
            let store = try ConnectionStore(directory: dir, environment: [:])
            try store.add(try pat(), secret: Secret(secretToken))
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyPath)
        let store = try ConnectionStore(directory: dir, environment: [:])
        let error = try #require(throws: DatabricksError.self) { try store.resolve("prod") }
        #expect(error.message.contains("refusing the key file"))
        #expect(error.message.contains("0644"))
        #expect(error.remedy.contains("chmod 600"))
        // Storing a new secret is refused too: the key would be exposed.
        #expect(throws: DatabricksError.self) { try store.add(try pat("other"), secret: Secret("x")) }
        // Group-readable only is refused as well; 0600 works again.
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: keyPath)
        #expect(throws: DatabricksError.self) { try store.resolve("prod") }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyPath)
        #expect(try store.resolve("prod").warehouseID == "8a1c2f3d4e5b6a70")
    }

    @Test func removingAConnectionRemovesItsSecret() throws {
        let dir = makeConfigDirectory()
        let store = try ConnectionStore(directory: dir, environment: [:])
        try store.add(try pat(), secret: Secret(secretToken))
        try store.add(try pat("keep"), secret: Secret("another-secret"))
        #expect(try store.hasStoredSecret("prod"))
        try store.remove("prod", at: Date(timeIntervalSince1970: 1_777_000_000))
        #expect(try !store.hasStoredSecret("prod"))
        #expect(try store.list().map(\.name) == ["keep"])
        // Pipelines naming it are told it was removed, and when.
        #expect(try store.removal("prod") == "2026-04-24T03:06:40Z")
        let removed = #expect(throws: ConnectionRemoved.self) { try store.get("prod") }
        #expect(removed?.description.hasPrefix("connection prod was removed (2026-04-24T03:06:40Z); no saved connection named 'prod'") == true)
        #expect(throws: DatabricksError.self) { try store.remove("prod") }
        #expect(throws: DatabricksError.self) { try store.get("never") }
        #expect(try store.removal("never") == nil)
        // Re-adding the name with an environment reference does not resurrect the old secret, and clears the removal.
        try store.add(try pat("prod", secret: .environment("PROD_TOKEN")))
        #expect(try !store.hasStoredSecret("prod"))
        #expect(try store.hasStoredSecret("keep"))
        #expect(try store.removal("prod") == nil && store.get("prod").name == "prod")
    }

    @Test func replacingAnEncryptedSecretWithAnEnvironmentReferenceDropsIt() throws {
        let dir = makeConfigDirectory()
        let store = try ConnectionStore(directory: dir, environment: [:])
        try store.add(try pat(), secret: Secret(secretToken))
        #expect(throws: DatabricksError.self) { try store.add(try pat(), secret: Secret("again")) }
        try store.add(try pat(secret: .environment("PROD_TOKEN")), replace: true)
        #expect(try !store.hasStoredSecret("prod"))
        #expect(try store.get("prod").secret == .environment("PROD_TOKEN"))
    }

    @Test func rawDataFileHoldsNoPlaintextSecret() throws {
        let dir = makeConfigDirectory()
        let oauthSecret = "OAUTH-CANARY-e4d2c0b8a6f1"
        do {
            let store = try ConnectionStore(directory: dir, environment: [:])
            try store.add(try pat(), secret: Secret(secretToken))
            try store.add(try SavedConnection(name: "sp", host: "h.example.com", warehouseID: "abc", auth: .oauthM2M,
                clientID: "cid", secret: .encrypted), secret: Secret(oauthSecret))
            try store.add(try pat("envref", secret: .environment("MY_TOKEN_VAR")))
        }
        let dataFile = ConnectionStore.environmentDirectory(dir) + "/data.mdb"
        let raw = try bytes(of: dataFile)
        #expect(raw.count > 0)
        // The store really is in this file (names and hosts are there) ...
        #expect(contains(raw, "dbc-1.cloud.databricks.com"))
        #expect(contains(raw, "MY_TOKEN_VAR"))
        // ... but neither secret, in plain text or base64.
        for s in [secretToken, oauthSecret] {
            #expect(!contains(raw, s))
            #expect(!contains(raw, Data(s.utf8).base64EncodedString()))
        }
        #expect(try fileMode(dataFile) == 0o600)
        // The key file is the only other file, and it holds no secret either.
        let keyRaw = try bytes(of: SecretCipher.keyFilePath(directory: dir))
        #expect(!contains(keyRaw, secretToken))
    }

    @Test func listOutputShowsSourcesNeverSecrets() throws {
        let dir = makeConfigDirectory()
        let store = try ConnectionStore(directory: dir, environment: ["PROD_TOKEN": "env-CANARY-secret"])
        try store.add(try pat(), secret: Secret(secretToken))
        try store.add(try SavedConnection(name: "ci", host: "h.example.com", warehouseID: "abc", auth: .oauthM2M,
            clientID: "cid-1", secret: .environment("CI_SECRET")))
        try store.add(try pat("staging", secret: .environment("PROD_TOKEN")))
        let list = try store.list()
        #expect(list.map(\.name) == ["ci", "prod", "staging"])
        let text = ConnectionStore.renderList(list)
        let json = String(decoding: ConnectionStore.listJSON(list), as: UTF8.self)
        for out in [text, json] {
            #expect(!out.contains(secretToken))
            #expect(!out.contains("env-CANARY-secret"))
        }
        #expect(text.contains("prod"))
        #expect(text.contains("stored (encrypted)"))
        #expect(text.contains("env CI_SECRET"))
        #expect(text.contains("oauth-m2m (cid-1)"))
        #expect(text.contains("8a1c2f3d4e5b6a70"))
        let root = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(root["format"] as? String == "cdfsync-connections/1")
        let conns = try #require(root["connections"] as? [[String: Any]])
        #expect((conns[1]["secret"] as? [String: Any])?["source"] as? String == "encrypted")
        #expect((conns[2]["secret"] as? [String: Any])?["variable"] as? String == "PROD_TOKEN")
    }

    @Test func environmentReferencesResolveAtUseTime() throws {
        let dir = makeConfigDirectory()
        do {
            let store = try ConnectionStore(directory: dir, environment: [:])
            try store.add(try pat(secret: .environment("PROD_TOKEN")))
            let error = try #require(throws: DatabricksError.self) { try store.resolve("prod") }
            #expect(error.message.contains("PROD_TOKEN"))
            #expect(error.message.contains("is not set"))
        }
        // No key is needed for environment references.
        #expect(!FileManager.default.fileExists(atPath: SecretCipher.keyFilePath(directory: dir)))
        let store = try ConnectionStore(directory: dir, environment: ["PROD_TOKEN": "dapi-from-env"])
        guard case .personalAccessToken(let t) = try store.resolve("prod").authentication else {
            Issue.record("expected a PAT")
            return
        }
        #expect(t.reveal() == "dapi-from-env")
    }

    @Test func sealedSecretsAreBoundToTheirConnectionName() throws {
        let cipher = try SecretCipher(keyBytes: Array(repeating: 9, count: 32), source: .environment)
        let a = try cipher.seal(Secret("same"), connection: "a")
        let b = try cipher.seal(Secret("same"), connection: "a")
        #expect(a != b)  // a fresh nonce each time
        #expect(a.count == 1 + 12 + 4 + 16)
        #expect(try cipher.open(a, connection: "a").reveal() == "same")
        #expect(throws: DatabricksError.self) { try cipher.open(a, connection: "b") }
        var tampered = a
        tampered[20] ^= 1
        #expect(throws: DatabricksError.self) { try cipher.open(tampered, connection: "a") }
    }

    @Test func validatesNamesHostsAndOAuthClientIDs() throws {
        for bad in ["", "has space", "semi;colon", "-lead", String(repeating: "x", count: 65), "a/b"] {
            #expect(throws: DatabricksError.self) { try SavedConnection.validateName(bad) }
        }
        try SavedConnection.validateName("prod-eu_1.main")
        #expect(throws: DatabricksError.self) {
            try SavedConnection(name: "x", host: "http://dbc.example.com", warehouseID: "abc", secret: .encrypted)
        }
        #expect(throws: DatabricksError.self) {
            try SavedConnection(name: "x", host: "h.example.com", warehouseID: "abc", auth: .oauthM2M, secret: .encrypted)
        }
        #expect(throws: DatabricksError.self) {
            try SavedConnection(name: "x", host: "h.example.com", warehouseID: "abc", secret: .environment("dapi-123 value"))
        }
        let dir = makeConfigDirectory()
        let store = try ConnectionStore(directory: dir, environment: [:])
        // An encrypted source without a secret is refused.
        #expect(throws: DatabricksError.self) { try store.add(try pat(), secret: nil) }
        // An environment reference with a value is refused rather than silently dropping or storing the value.
        #expect(throws: DatabricksError.self) {
            try store.add(try pat(secret: .environment("PROD_TOKEN")), secret: Secret("dapi-oops"))
        }
        #expect(try store.list().isEmpty)
    }
}
