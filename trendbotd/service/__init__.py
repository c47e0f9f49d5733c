"""The OS-facing shell: instance lock, daemonizing, sd_notify, signals, logging."""
