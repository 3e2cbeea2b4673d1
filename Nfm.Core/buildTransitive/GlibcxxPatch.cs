// The one implementation of the GLIBCXX patch, compiled twice: into Nfm.Core (Nfm.GlibcxxPatch, which Nfm.FSharp's
// Native.load uses at run time, e.g. in F# Interactive where no MSBuild target runs) and, from this very file, into the
// MSBuild task MarkGlibcxxVersionWeak that Nfm.Core.targets declares (RoslynCodeTaskFactory, Type="Class"). The file
// ships in the Nfm.Core package next to that targets file. Nfm.Core defines NFM_CORE, which leaves the task class out
// of the library (the library does not reference MSBuild). The task factory compiles against .NET Standard 2.0, so the
// code keeps to that API.
//
// Why: TorchSharp 0.107.0's libLibTorchSharp.so was built with GCC 13 and records a need for GLIBCXX_3.4.32; Debian
// 12's libstdc++ stops at 3.4.30, so the loader refuses the file and TorchSharp reports a misleading "doesn't contain a
// reference to libtorch-cpu-linux-x64". The only symbol of that version is the marker _ZSt21ios_base_library_initv,
// which no relocation uses, so marking the version requirement weak (VER_FLG_WEAK in its Vernaux entry) lets the loader
// accept the file. The patch is applied to copies only (build output, publish output, a per-user cache), never to the
// NuGet package cache, and only where the system libstdc++ lacks the version. It is idempotent.
#nullable enable
using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Nfm
{
    /// <summary>
    /// Marks libLibTorchSharp.so's GLIBCXX_3.4.32 requirement weak where the system libstdc++ lacks that version
    /// (Debian 12), so that the loader accepts the file. Works on copies; a no-op where the system is new enough.
    /// </summary>
    public static class GlibcxxPatch
    {
        /// <summary>The version requirement that is marked weak.</summary>
        public const string Version = "GLIBCXX_3.4.32";
        /// <summary>The file the patch applies to.</summary>
        public const string FileName = "libLibTorchSharp.so";

        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const ushort VerFlgWeak = 0x2;
        private static readonly string[] Libstdcxx =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };
        private static bool? _systemNeedsPatch;

        /// <summary>
        /// True when this is Linux, a system libstdc++ is found and it does not define <see cref="Version"/>. Set the
        /// environment variable NFM_GLIBCXX_PATCH to 1 (always) or 0 (never) to override.
        /// </summary>
        public static bool SystemNeedsPatch()
        {
            var forced = Environment.GetEnvironmentVariable("NFM_GLIBCXX_PATCH");
            if (forced == "1") return true;
            if (forced == "0") return false;
            if (_systemNeedsPatch is bool known) return known;
            bool needs = false;
            if (RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
                foreach (var candidate in Libstdcxx)
                    if (File.Exists(candidate))
                    {
                        needs = !Encoding.ASCII.GetString(File.ReadAllBytes(candidate)).Contains(Version);
                        break;
                    }
            _systemNeedsPatch = needs;
            return needs;
        }

        /// <summary>
        /// Sets the weak bit of every non-weak <see cref="Version"/> requirement in an ELF64 little-endian image, in
        /// place. Returns true when a byte changed; false for other files, or when it is already weak.
        /// </summary>
        public static bool MarkWeak(byte[] b)
        {
            if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F' || b[4] != 2 || b[5] != 1)
                return false;
            bool changed = false;
            foreach (int flagsAt in RequirementFlags(b))
            {
                ushort flags = BitConverter.ToUInt16(b, flagsAt);
                if ((flags & VerFlgWeak) != 0) continue;
                flags |= VerFlgWeak;
                b[flagsAt] = (byte)(flags & 0xff);
                b[flagsAt + 1] = (byte)(flags >> 8);
                changed = true;
            }
            return changed;
        }

        /// <summary>True when the ELF file at <paramref name="path"/> has a non-weak <see cref="Version"/> requirement.</summary>
        public static bool NeedsWeakMark(string path)
        {
            var b = File.ReadAllBytes(path);
            return MarkWeak(b);
        }

        /// <summary>Patches one file in place (written to a temporary file, then moved over it). True when it changed.</summary>
        public static bool PatchFile(string path)
        {
            var b = File.ReadAllBytes(path);
            if (!MarkWeak(b)) return false;
            string tmp = path + ".patching";
            File.WriteAllBytes(tmp, b);
            Replace(tmp, path);
            return true;
        }

        /// <summary>
        /// Patches every <see cref="FileName"/> below <paramref name="folder"/> when <see cref="SystemNeedsPatch"/>;
        /// returns the paths it changed. A missing folder is no error.
        /// </summary>
        public static string[] PatchFolder(string folder)
        {
            if (!SystemNeedsPatch() || !Directory.Exists(folder)) return Array.Empty<string>();
            var changed = new System.Collections.Generic.List<string>();
            foreach (var path in Directory.GetFiles(folder, FileName, SearchOption.AllDirectories))
                if (PatchFile(path)) changed.Add(path);
            return changed.ToArray();
        }

        /// <summary>
        /// The file to load instead of <paramref name="path"/>: the file itself when no patch is needed, else a patched
        /// copy in a per-user cache folder (NFM_NATIVE_CACHE, else $XDG_CACHE_HOME/nfm/native, else ~/.cache/nfm/native),
        /// one folder per content hash of the original, so different TorchSharp versions do not collide. The original
        /// (e.g. in the NuGet package cache) is never written.
        /// </summary>
        public static string Resolve(string path)
        {
            if (!SystemNeedsPatch()) return path;
            var b = File.ReadAllBytes(path);
            string hash;
            using (var sha = SHA256.Create()) hash = BitConverter.ToString(sha.ComputeHash(b)).Replace("-", "").Substring(0, 16).ToLowerInvariant();
            if (!MarkWeak(b)) return path;
            string folder = Path.Combine(CacheRoot(), hash);
            string target = Path.Combine(folder, Path.GetFileName(path));
            if (File.Exists(target) && !NeedsWeakMark(target) && new FileInfo(target).Length == b.Length) return target;
            Directory.CreateDirectory(folder);
            string tmp = target + "." + System.Diagnostics.Process.GetCurrentProcess().Id + ".patching";
            File.WriteAllBytes(tmp, b);
            Replace(tmp, target);
            return target;
        }

        /// <summary>Moves <paramref name="tmp"/> over <paramref name="target"/> (a rename, so a reader never sees half a file).</summary>
        private static void Replace(string tmp, string target)
        {
            if (File.Exists(target)) File.Replace(tmp, target, null);
            else
                try { File.Move(tmp, target); }
                catch (IOException) when (File.Exists(target)) { File.Delete(tmp); } // another process won the race
        }

        private static string CacheRoot()
        {
            var own = Environment.GetEnvironmentVariable("NFM_NATIVE_CACHE");
            if (!string.IsNullOrEmpty(own)) return own;
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(root, "nfm", "native");
        }

        /// <summary>Offsets of the vna_flags field of every Vernaux entry named <see cref="Version"/>.</summary>
        private static System.Collections.Generic.IEnumerable<int> RequirementFlags(byte[] b)
        {
            long shoff = BitConverter.ToInt64(b, 0x28);
            int shentsize = BitConverter.ToUInt16(b, 0x3A), shnum = BitConverter.ToUInt16(b, 0x3C);
            if (shoff <= 0 || shentsize < 0x40 || shoff + (long)shnum * shentsize > b.Length) yield break;
            for (int i = 0; i < shnum; i++)
            {
                long sh = shoff + (long)i * shentsize;
                if (BitConverter.ToUInt32(b, (int)sh + 4) != ShtGnuVerneed) continue;
                long off = BitConverter.ToInt64(b, (int)sh + 0x18);
                int link = (int)BitConverter.ToUInt32(b, (int)sh + 0x28);
                if (link >= shnum) continue;
                long strOff = BitConverter.ToInt64(b, (int)(shoff + (long)link * shentsize) + 0x18);
                long vn = off;
                while (vn >= 0 && vn + 16 <= b.Length)
                {
                    int cnt = BitConverter.ToUInt16(b, (int)vn + 2);
                    long aux = vn + BitConverter.ToUInt32(b, (int)vn + 8);
                    for (int a = 0; a < cnt && aux + 16 <= b.Length; a++)
                    {
                        long nameAt = strOff + BitConverter.ToUInt32(b, (int)aux + 8);
                        if (nameAt < 0 || nameAt >= b.Length) break;
                        int end = (int)nameAt;
                        while (end < b.Length && b[end] != 0) end++;
                        if (Encoding.ASCII.GetString(b, (int)nameAt, end - (int)nameAt) == Version) yield return (int)aux + 4;
                        uint next = BitConverter.ToUInt32(b, (int)aux + 12);
                        if (next == 0) break;
                        aux += next;
                    }
                    uint vnNext = BitConverter.ToUInt32(b, (int)vn + 12);
                    if (vnNext == 0) break;
                    vn += vnNext;
                }
            }
        }
    }

#if !NFM_CORE
    /// <summary>MSBuild task: <see cref="GlibcxxPatch.PatchFolder"/> on a build or publish output folder.</summary>
    public sealed class MarkGlibcxxVersionWeak : Microsoft.Build.Utilities.Task
    {
        /// <summary>The folder searched (recursively) for libLibTorchSharp.so.</summary>
        [Microsoft.Build.Framework.Required]
        public string Folder { get; set; } = "";

        public override bool Execute()
        {
            foreach (var path in GlibcxxPatch.PatchFolder(Folder))
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                    "Marked " + GlibcxxPatch.Version + " weak in " + path + " (the system libstdc++ lacks it)");
            return true;
        }
    }
#endif
}
