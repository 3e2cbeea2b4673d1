namespace Nfm.FSharp

open System
open System.Diagnostics
open System.IO
open System.Text.Json.Nodes

/// Who holds an output folder: the process, its host and start time, and the command it runs.
type LockHolder = { Pid: int; Host: string; Started: DateTime; Command: string }

/// One process per output folder. `FolderLock.Acquire` creates FOLDER/.nfm-lock (atomically: the file is created only
/// when absent) naming the holder; a second process on the folder stops with one line naming the holder, and a lock
/// left by a process that is no longer running on this host is taken over, with a message. Disposing releases it.
type FolderLock private (path: string) =
    static let fileName = ".nfm-lock"

    static let holderOf (node: JsonNode) =
        { Pid = node["pid"].GetValue<int>(); Host = node["host"].GetValue<string>()
          Started = DateTime.Parse(node["started"].GetValue<string>(), Globalization.CultureInfo.InvariantCulture,
                                   Globalization.DateTimeStyles.RoundtripKind)
          Command = (match node["command"] with null -> "" | c -> c.GetValue<string>()) }

    /// This process as a lock records it.
    static member Me() =
        use p = Process.GetCurrentProcess()
        { Pid = p.Id; Host = Environment.MachineName; Started = p.StartTime.ToUniversalTime()
          Command = String.Join(" ", Environment.GetCommandLineArgs()) }

    /// Whether a holder is still running: a process of that id on this host that started when the lock says (so a
    /// reused id is not mistaken for it). A holder on another host cannot be checked and counts as running.
    static member IsRunning(h: LockHolder) =
        if h.Host <> Environment.MachineName then true
        else
            try
                use p = Process.GetProcessById h.Pid
                not p.HasExited && abs (p.StartTime.ToUniversalTime() - h.Started).TotalSeconds < 2.0
            with :? ArgumentException | :? InvalidOperationException -> false

    /// Writes a lock file for `holder` into `folder` (for tests and tools; `Acquire` writes its own).
    static member Write(folder: string, holder: LockHolder) =
        let o = JsonFile.obj [ "pid", JsonFile.int (int64 holder.Pid); "host", JsonFile.str holder.Host
                               "started", JsonFile.str (holder.Started.ToString("o", Globalization.CultureInfo.InvariantCulture))
                               "command", JsonFile.str holder.Command ]
        File.WriteAllText(Path.Combine(folder, fileName), o.ToJsonString())

    /// Takes `folder` for this process (creating it), or raises InvalidDataException naming the running holder.
    static member Acquire(folder: string, reporter: Reporter) : FolderLock =
        Directory.CreateDirectory folder |> ignore
        let path = Path.Combine(folder, fileName)
        let me = FolderLock.Me()
        let rec attempt (tries: int) =
            let created =
                try
                    use fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write)
                    true
                with :? IOException when File.Exists path -> false
            if created then
                FolderLock.Write(folder, me)
                new FolderLock(path)
            else
                let holder =
                    try Some (holderOf (JsonNode.Parse(File.ReadAllText path)))
                    with _ -> None
                match holder with
                | None when tries > 0 && (DateTime.UtcNow - File.GetLastWriteTimeUtc path).TotalSeconds < 5.0 ->
                    // Being written by its holder this instant: look again.
                    Threading.Thread.Sleep 200
                    attempt (tries - 1)
                | Some h when FolderLock.IsRunning h ->
                    raise (InvalidDataException(
                        sprintf "%s is in use by process %d on %s since %s (%s); wait for it to finish or use another output folder"
                            folder h.Pid h.Host (h.Started.ToString("u")) h.Command))
                | _ when tries > 0 ->
                    let who =
                        match holder with
                        | Some h -> sprintf "process %d on %s (started %s), which is no longer running" h.Pid h.Host (h.Started.ToString("u"))
                        | None -> "a process whose lock cannot be read"
                    reporter.Message(sprintf "%s: taking over the lock left by %s" folder who)
                    File.Delete path
                    attempt (tries - 1)
                | _ -> raise (InvalidDataException(sprintf "%s: cannot take its lock file %s; remove it if no process uses the folder" folder path))
        attempt 3

    /// The lock file's path.
    member _.Path = path

    interface IDisposable with
        member _.Dispose() = try File.Delete path with _ -> ()
