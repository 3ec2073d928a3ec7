["memory", "db", "aws-secrets-manager", "aws-ssm", "openbao", "kubernetes", "azure-key-vault", "gcp-secret-manager"]
