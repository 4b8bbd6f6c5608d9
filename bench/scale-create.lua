-- CreateExportCustomJob of one day, for wrk (bench/scale.sh).
wrk.method = "POST"
wrk.body = "StartDay=2025-10-01&EndDay=2025-10-01&FriendlyName=wrk"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
