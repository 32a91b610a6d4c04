import CDFSyncClient
import Testing

@Suite("Connection settings")
struct ConnectionSettingsTests {
    @Test(arguments: [
        ("dbc-1.cloud.databricks.com", "https://dbc-1.cloud.databricks.com"),
        ("https://dbc-1.cloud.databricks.com/", "https://dbc-1.cloud.databricks.com"),
        ("https://dbc-1.cloud.databricks.com:8443", "https://dbc-1.cloud.databricks.com:8443"),
        ("  adb-42.azuredatabricks.net  ", "https://adb-42.azuredatabricks.net"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://localhost:9", "http://localhost:9"),
    ])
    func normalisesHosts(_ input: String, _ expected: String) throws {
        #expect(try ConnectionSettings.normalizeHost(input) == expected)
    }

    @Test(arguments: ["http://dbc-1.cloud.databricks.com", "ftp://x.y", "https://x.y/sql/1.0", "", "https://"])
    func rejectsBadHosts(_ input: String) {
        #expect(throws: DatabricksError.self) { try ConnectionSettings.normalizeHost(input) }
    }

    @Test func parsesHTTPPath() throws {
        #expect(try ConnectionSettings.warehouseID(fromHTTPPath: "/sql/1.0/warehouses/8a1c2f3d4e5b6a70") == "8a1c2f3d4e5b6a70")
        #expect(try ConnectionSettings.warehouseID(fromHTTPPath: "/sql/1.0/endpoints/abc123") == "abc123")
        #expect(throws: DatabricksError.self) { try ConnectionSettings.warehouseID(fromHTTPPath: "/sql/protocolv1/o/1/0123-abc") }
    }

    @Test func secretsNeverPrint() throws {
        let s = Secret("dapi-very-secret")
        #expect("\(s)" == "<redacted>")
        #expect(String(reflecting: s) == "Secret(<redacted>)")
        let settings = try ConnectionSettings(host: "h.example.com", warehouseID: "abc",
            authentication: .oauthM2M(clientID: "cid", clientSecret: Secret("top-secret")))
        #expect(!"\(settings)".contains("top-secret"))
        #expect(!String(reflecting: settings).contains("top-secret"))
        #expect(!"\(settings.authentication)".contains("top-secret"))
    }
}
