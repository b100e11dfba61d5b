"""The seed's `[backup]` block exactly as issue 14 pasted it (users already have it)."""

SEED_BACKUP_BLOCK = '''\
[backup]
enable_backups = true                 # Enable backup system
backup_frequency = "daily"            # Backup frequency: hourly, daily, weekly
backup_time = "02:00"                 # Time for daily backups (HH:MM)
retention_days = 90                   # Number of days to retain backups
archive_threshold_days = 30           # Days before archiving old backups
keep_minimum_count = 10               # Minimum number of recent backups to keep
auto_backup_enabled = true            # Enable automatic scheduled backups
include_versions = true               # Include version history in backups
include_workflows = false             # Include workflow snapshots in backups
compression_level = 6                 # Compression level (0-9)
archive_path = "data/archives"        # Path for archived backups
backup_path = "data/backups"          # Path for active backups
cloud_backup_enabled = false          # Enable cloud backup
# cloud_provider = "s3"               # Cloud provider: s3, azure, gcs
# cloud_bucket = "my-backups"         # Cloud bucket/container name
# cloud_access_key = ""               # Cloud access key
# cloud_secret_key = ""               # Cloud secret key
# cloud_region = "us-east-1"          # Cloud region
'''


def seed_config(folder, **changes) -> str:
    """The seed block with some values replaced (``key="value as TOML"``), written to a file."""
    lines = []
    for line in SEED_BACKUP_BLOCK.splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(f"{key} = {changes.pop(key)}" if key in changes else line)
    lines += [f"{key} = {value}" for key, value in changes.items()]
    path = folder / "seed.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)
