//! C reproducers: one standalone C file per program, using only libc and the kernel's uapi
//! headers, one statement group per op with the op's text as a comment, fit to paste into a
//! linux-media report. Hangs, stale reads and memory faults are detected by the reproducer
//! itself and printed as `FINDING: <kind>: <title>` lines in the oracles' format (a fault in a
//! fill or check is caught as the executor catches it, and printed as its `FAULT` outcome);
//! splats and leaked fences are seen in the kernel log and trace, as with any reproducer.
use crate::exec::BufId;
use crate::program::{Arg, Handle, Memory, Op, Program, Queue, ResKind};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

const PREAMBLE: &str = include_str!("preamble.c");

fn q(queue: Queue) -> u32 {
    match queue {
        Queue::Out => 0,
        Queue::Cap => 1,
        Queue::Raw(v) => v,
    }
}

fn var(h: &Handle) -> String {
    h.to_string()
}

fn opt_i(v: Option<u32>) -> String {
    v.map_or("-1".into(), |x| x.to_string())
}

fn c_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The C source of a reproducer for `p`. It runs the program once, or again and again for the
/// seconds its first argument gives (a race may need many tries), until it prints a finding.
/// Program threads are pthreads: a segment between barriers starts its threads together and
/// joins them at its end.
pub fn to_c(p: &Program) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "/*\n * m2mfuzz reproducer. Build: gcc -Wall -O2 -pthread -o repro repro.c; run as root\n * (`./repro 60` repeats the program for up to 60 s, until a finding or a kernel report).\n *"
    );
    let _ = writeln!(s, " * The program it was generated from:\n *");
    for line in p.to_string().lines() {
        let _ = writeln!(s, " *   {}", line.replace("*/", "* /"));
    }
    let _ = writeln!(s, " */\n{PREAMBLE}");
    // Every handle that appears, produced or not (an unbound one stays -1: the call fails
    // EBADF), at file scope: every thread uses them.
    let mut handles: Vec<Handle> = p
        .ops
        .iter()
        .flat_map(|o| o.inputs().into_iter().chain(o.output()))
        .collect();
    handles.sort();
    handles.dedup();
    let mut cleanup = String::new();
    for h in &handles {
        let v = var(h);
        match h.kind {
            ResKind::Ctx => {
                let _ = writeln!(s, "static struct ctx {v} = {{ .fd = -1, .media = -1 }};");
                let _ = writeln!(cleanup, "\tif ({v}.fd >= 0)\n\t\tclose({v}.fd);\n\tif ({v}.media >= 0)\n\t\tclose({v}.media);\n\t{v}.fd = {v}.media = -1;");
            }
            ResKind::Mapping => {
                // `_gone`: unmapped by a thread while others may still be in it (see `to_c`).
                let _ = writeln!(
                    s,
                    "static unsigned char *{v}, *{v}_gone;\nstatic size_t {v}_len, {v}_gone_len;"
                );
                let _ = writeln!(
                    cleanup,
                    "\tif ({v})\n\t\tmunmap({v}, {v}_len);\n\t{v} = NULL;\n\tif ({v}_gone)\n\t\tmunmap({v}_gone, {v}_gone_len);\n\t{v}_gone = NULL;"
                );
            }
            _ => {
                let _ = writeln!(s, "static int {v} = -1;");
                let _ = writeln!(cleanup, "\tif ({v} >= 0)\n\t\tclose({v});\n\t{v} = -1;");
            }
        }
    }
    // Which buffer a dmabuf / mapping / sync_file stands for, and each context's driver.
    let mut prov: BTreeMap<Handle, BufId> = BTreeMap::new();
    let mut driver: BTreeMap<Handle, String> = BTreeMap::new();
    // Mappings of a dmabuf (the others are of a V4L2 buffer).
    let mut dmabuf_maps: BTreeSet<Handle> = BTreeSet::new();
    let ctx_index = |h: &Handle| h.id.min(15);
    // The canary last filled into each mapping: a check against it asks "is it gone?".
    let mut canary: BTreeMap<Handle, u32> = BTreeMap::new();
    let mut funcs = String::new();
    let mut body = String::new();
    let mut raced = false;
    for (k, seg) in p.segments().into_iter().enumerate() {
        let threads: BTreeSet<u8> = seg.clone().map(|i| p.thread(i)).collect();
        // Ops of a concurrent segment, and any after it, are not judged stale: what completed
        // when depends on the race's order (the stale-read oracle stops there too).
        let concurrent = threads.len() > 1;
        raced |= concurrent;
        let mut per: BTreeMap<u8, String> = BTreeMap::new();
        // As the executor: a thread of `stream` ops only stops its clients once every thread
        // with other ops is done.
        let client = |t: u8| {
            seg.clone()
                .filter(|&i| p.thread(i) == t)
                .all(|i| matches!(p.ops[i], Op::Stream { .. }))
        };
        // Clients of nobody (a segment of clients only) keep their timeout rule.
        let working = threads.iter().filter(|&&t| !client(t)).count();
        for i in seg.clone() {
            let op = &p.ops[i];
            let text = op.to_string();
            let out = per.entry(p.thread(i)).or_default();
            let _ = writeln!(
                out,
                "\t/* {}{} */",
                thread_tag(p.thread(i)),
                text.replace("*/", "* /")
            );
            let lit = c_str(&text);
            let mut code = emit(
                op,
                &mut prov,
                &mut driver,
                &mut dmabuf_maps,
                &ctx_index,
                !raced,
            );
            match op {
                Op::Fill { map, byte } => {
                    canary.insert(*map, byte.0 & 0xff);
                }
                Op::Check { map, byte } if !raced && canary.get(map) == Some(&(byte.0 & 0xff)) => {
                    code = code.replace("do_check(", "do_check_canary(");
                }
                Op::Stream { .. } => {
                    if concurrent && client(p.thread(i)) && working > 0 {
                        code = code.replace(", NULL);", &format!(", &seg{k}_working);"));
                    }
                    // As the oracle: which job wrote which buffer when is the client's
                    // business, so nothing after it is judged stale.
                    raced = true;
                }
                // As the executor: a mapping another thread may be filling or checking right
                // now goes when the round ends; later ops find it gone (NULL).
                Op::Munmap { h } if concurrent => {
                    let v = var(h);
                    code = format!("\tif ({v}_gone)\n\t\tmunmap({v}_gone, {v}_gone_len);\n\t{v}_gone = {v}, {v}_gone_len = {v}_len;\n\tr = {v} ? 0 : -1;\n\t{v} = NULL;\n");
                }
                _ => {}
            }
            let _ = writeln!(out, "{code}\treport({i}, {lit}, r);\n");
        }
        if !concurrent {
            body.extend(per.into_values());
            continue;
        }
        let n = per.len();
        let _ = writeln!(
            funcs,
            "static pthread_barrier_t seg{k}_start;\nstatic int seg{k}_working;\n"
        );
        for (t, code) in &per {
            let done = if client(*t) {
                ""
            } else {
                "\t__atomic_sub_fetch(&seg{k}_working, 1, __ATOMIC_SEQ_CST);\n"
            }
            .replace("{k}", &k.to_string());
            let _ = writeln!(
                funcs,
                "/* Segment {k}, thread {t}. */\nstatic void *seg{k}_t{t}(void *arg)\n{{\n\tlong r;\n\t(void)arg;\n\t(void)r;\n\tpthread_barrier_wait(&seg{k}_start);\n{code}{done}\treturn NULL;\n}}\n"
            );
        }
        let _ = writeln!(body, "\t/* Segment {k}: {n} threads at once. */\n\t{{\n\t\tpthread_t th[{n}];\n\t\tpthread_barrier_init(&seg{k}_start, NULL, {n});\n\t\tseg{k}_working = {working};");
        for (j, t) in per.keys().enumerate() {
            let _ = writeln!(
                body,
                "\t\tpthread_create(&th[{j}], NULL, seg{k}_t{t}, NULL);"
            );
        }
        let _ = writeln!(body, "\t\tfor (int j = 0; j < {n}; j++)\n\t\t\tpthread_join(th[j], NULL);\n\t\tpthread_barrier_destroy(&seg{k}_start);\n\t}}\n");
    }
    let _ = writeln!(
        s,
        "\n{funcs}static void run_program(void)\n{{\n\tlong r;\n\t(void)r;\n{body}}}\n"
    );
    let _ = writeln!(s, "/* Close and unmap everything, so the next round starts clean. */\nstatic void cleanup(void)\n{{\n{cleanup}\tmemset(complete_buf, 0, sizeof(complete_buf));\n}}\n");
    let _ = writeln!(
        s,
        "int main(int argc, char **argv)\n{{\n\tdouble seconds = argc > 1 ? atof(argv[1]) : 0;\n\tdouble start = now_s();\n\tsetvbuf(stdout, NULL, _IONBF, 0);\n\tinstall_fault_handler();\n\tif (seconds > 0)\n\t\tkmsg_open();\n\tdo {{\n\t\trun_program();\n\t\tcleanup();\n\t\trounds++;\n\t}} while (!findings && !kernel_reported() && now_s() - start < seconds);\n\tif (rounds > 1)\n\t\tprintf(\"%d rounds\\n\", rounds);\n\tprintf(\"%d ok, %d errors\\n\", ok_count, err_count);\n\treturn 0;\n}}"
    );
    s
}

/// `@N ` for ops off the main thread, as in program text.
fn thread_tag(t: u8) -> String {
    if t == 0 {
        String::new()
    } else {
        format!("@{t} ")
    }
}

/// The C string literals before and after the signal's name in the memory-fault finding of a
/// fill (`writing`) or check of `map`, as the oracle titles it.
fn fault_title(
    map: &Handle,
    writing: bool,
    prov: &BTreeMap<Handle, BufId>,
    driver: &BTreeMap<Handle, String>,
    dmabuf_maps: &BTreeSet<Handle>,
) -> (String, String) {
    let buf = prov
        .get(map)
        .map(|b| (driver.get(&b.ctx).map_or("unknown", String::as_str), *b));
    let words = crate::oracle::fault::mapping_words(dmabuf_maps.contains(map), buf);
    let title = crate::oracle::fault::title("\0", writing, &words);
    let (pre, post) = title.split_once('\0').unwrap_or((&title, ""));
    (c_str(pre), c_str(post))
}

fn emit(
    op: &Op,
    prov: &mut BTreeMap<Handle, BufId>,
    driver: &mut BTreeMap<Handle, String>,
    dmabuf_maps: &mut BTreeSet<Handle>,
    ctx_index: &dyn Fn(&Handle) -> u32,
    // Keep the stale-read bookkeeping (`complete_buf`), which assumes program order.
    track: bool,
) -> String {
    let mem = |m: Option<Memory>| m.map_or("-1".to_string(), |m| m.raw().to_string());
    match op {
        Op::Open { node, ret } => {
            let sel = node.to_text().unwrap_or_default();
            driver.insert(*ret, sel.split(':').next().unwrap_or("").to_string());
            format!("\tr = open_node(&{}, {});\n", var(ret), c_str(&sel))
        }
        Op::Close { h } => format!("\tr = close({0}.fd); if ({0}.media >= 0) close({0}.media);\n", var(h)),
        Op::CloseDmabuf { h } | Op::CloseSync { h } | Op::CloseRequest { h } | Op::CloseTimeline { h } => {
            format!("\tr = close({});\n", var(h))
        }
        // The pointer goes with the mapping: a later fill or check of the handle is skipped.
        Op::Munmap { h } => format!("\tr = munmap({0}, {0}_len);\n\t{0} = NULL;\n", var(h)),
        Op::GFmt { ctx, queue } => format!("\tr = do_fmt(&{}, {}, VIDIOC_G_FMT, 0, 0, 0, 0);\n", var(ctx), q(*queue)),
        Op::SFmt { ctx, queue, fourcc, width, height, planes } => format!(
            "\tr = do_fmt(&{}, {}, VIDIOC_S_FMT, {:#x}, {width}, {height}, {});\n",
            var(ctx),
            q(*queue),
            fourcc.0,
            planes.unwrap_or(1)
        ),
        Op::Reqbufs { ctx, queue, count, memory } => {
            format!("\tr = do_reqbufs(&{}, {}, {count}, {});\n", var(ctx), q(*queue), memory.raw())
        }
        Op::CreateBufs { ctx, queue, count, memory, .. } => {
            format!("\tr = do_create_bufs(&{}, {}, {count}, {});\n", var(ctx), q(*queue), memory.raw())
        }
        Op::RemoveBufs { ctx, queue, index, count } => format!(
            "\t{{ struct v4l2_remove_buffers rb = {{ .index = {index}, .count = {count}, .type = buf_type(&{0}, {1}) }};\n\t  r = xioctl({0}.fd, VIDIOC_REMOVE_BUFS, &rb); }}\n",
            var(ctx),
            q(*queue)
        ),
        Op::Querybuf { ctx, queue, index } => format!(
            "\tr = do_buf(&{}, VIDIOC_QUERYBUF, {}, {index}, -1, -1, -1, -1, -1, -1);\n",
            var(ctx),
            q(*queue)
        ),
        Op::Mmap { ctx, queue, index, plane, ret } => {
            prov.insert(*ret, BufId { ctx: *ctx, queue: *queue, index: *index });
            dmabuf_maps.remove(ret);
            format!(
                "\t{0} = do_mmap(&{1}, {2}, {index}, {3}, &{0}_len); r = {0} ? (long){0}_len : -1;\n",
                var(ret),
                var(ctx),
                q(*queue),
                plane.unwrap_or(0)
            )
        }
        Op::MmapDmabuf { dmabuf, ret } => {
            if let Some(b) = prov.get(dmabuf).copied() {
                prov.insert(*ret, b);
            }
            dmabuf_maps.insert(*ret);
            format!(
                "\t{0}_len = lseek({1}, 0, SEEK_END); {0} = mmap(NULL, {0}_len, PROT_READ | PROT_WRITE, MAP_SHARED, {1}, 0);\n\tif ({0} == MAP_FAILED)\n\t\t{0} = NULL;\n\tr = {0} ? (long){0}_len : -1;\n",
                var(ret),
                var(dmabuf)
            )
        }
        Op::Fill { map, byte } => {
            let (pre, post) = fault_title(map, true, prov, driver, dmabuf_maps);
            format!("\tr = {0} ? do_fill({0}, {0}_len, {1:#x}, {pre},\n\t\t{post}) : -1;\n", var(map), byte.0 as u8)
        }
        Op::Check { map, byte } => {
            let (pre, post) = fault_title(map, false, prov, driver, dmabuf_maps);
            let (c, qq, idx, drv) = match prov.get(map) {
                Some(b) if track => (ctx_index(&b.ctx) as i64, q(b.queue) as i64, b.index as i64, driver.get(&b.ctx).cloned().unwrap_or_default()),
                _ => (-1, -1, -1, String::new()),
            };
            format!(
                "\tr = {0} ? do_check({0}, {0}_len, {1:#x}, {c}, {qq}, {idx}, {2}, {pre},\n\t\t{post}) : -1;\n\tif (r >= 0)\n\t\tprintf(\"     %ld of %zu bytes differ\\n\", r, {0}_len);\n",
                var(map),
                byte.0 as u8,
                c_str(&drv)
            )
        }
        Op::Qbuf { ctx, queue, index, memory, dmabuf, request, bytesused, flags, field } => {
            let mut out = format!(
                "\tr = do_buf(&{}, VIDIOC_QBUF, {}, {index}, {}, {}, {}, {}, {}, {});\n",
                var(ctx),
                q(*queue),
                mem(*memory),
                dmabuf.map_or("-1".into(), |d| var(&d)),
                request.map_or("-1".into(), |r| var(&r)),
                opt_i(*bytesused),
                flags.map_or("-1".into(), |f| format!("{:#x}", f.0)),
                opt_i(*field)
            );
            if track && *queue == Queue::Cap {
                let _ = writeln!(out, "\tcomplete_buf[{}][1][{} & 31] = 0;", ctx_index(ctx), index);
            }
            out
        }
        Op::Dqbuf { ctx, queue, memory, timeout_ms } => {
            let mut out = format!(
                "\tr = do_dqbuf(&{}, {}, {}, {});\n",
                var(ctx),
                q(*queue),
                mem(*memory),
                timeout_ms.unwrap_or(2000)
            );
            if track && *queue == Queue::Cap {
                let _ = writeln!(out, "\tif (r >= 0) complete_buf[{}][1][r & 31] = 2;", ctx_index(ctx));
            }
            out
        }
        Op::Stream { ctx, jobs, timeout_ms } => {
            // A client thread of a concurrent segment gets the segment's count (see `to_c`).
            let mut out = format!("\tr = do_stream_client(&{}, {jobs}, {timeout_ms}, NULL);\n", var(ctx));
            // Which buffers the client left queued is not followed: no CAPTURE buffer of the
            // context counts as complete after it.
            if track {
                let _ = writeln!(out, "\tmemset(complete_buf[{}][1], 0, sizeof(complete_buf[0][1]));", ctx_index(ctx));
            }
            out
        }
        Op::Streamon { ctx, queue } => format!("\tr = do_stream(&{}, VIDIOC_STREAMON, {});\n", var(ctx), q(*queue)),
        Op::Streamoff { ctx, queue } => format!("\tr = do_stream(&{}, VIDIOC_STREAMOFF, {});\n", var(ctx), q(*queue)),
        Op::Expbuf { ctx, queue, index, plane, flags, ret } => {
            prov.insert(*ret, BufId { ctx: *ctx, queue: *queue, index: *index });
            format!(
                "\tr = {0} = do_expbuf(&{1}, {2}, {index}, {3}, {4});\n",
                var(ret),
                var(ctx),
                q(*queue),
                plane.unwrap_or(0),
                flags.map_or("-1".into(), |f| format!("{:#x}", f.0))
            )
        }
        Op::ExportSyncFile { dmabuf, dir, ret } => {
            if let Some(b) = prov.get(dmabuf).copied() {
                prov.insert(*ret, b);
            }
            format!(
                "\t{{ struct dma_buf_export_sync_file e = {{ .flags = {}, .fd = -1 }};\n\t  r = xioctl({}, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e); {} = e.fd; }}\n",
                dir.raw(),
                var(dmabuf),
                var(ret)
            )
        }
        Op::ImportSyncFile { dmabuf, sync, dir } => format!(
            "\t{{ struct dma_buf_import_sync_file i = {{ .flags = {}, .fd = {} }};\n\t  r = xioctl({}, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &i); }}\n",
            dir.raw(),
            var(sync),
            var(dmabuf)
        ),
        Op::DmabufSync { dmabuf, phase, dir } => format!(
            "\t{{ struct dma_buf_sync s = {{ .flags = {} }}; r = xioctl({}, DMA_BUF_IOCTL_SYNC, &s); }}\n",
            phase.raw() | dir.raw(),
            var(dmabuf)
        ),
        Op::Wait { sync, timeout_ms } => {
            let mut out = format!("\tr = do_wait({}, {timeout_ms});\n", var(sync));
            if let Some(b) = prov.get(sync).filter(|b| track && b.queue == Queue::Cap) {
                let _ = writeln!(
                    out,
                    "\t{{ char d[32], t[32]; if (r == 1 && fence_status({}, d, t) == 1) complete_buf[{}][1][{} & 31] = said_by(d); }}",
                    var(sync),
                    ctx_index(&b.ctx),
                    b.index
                );
            }
            out
        }
        Op::PollDmabuf { dmabuf, events, timeout_ms } => format!(
            "\t{{ struct pollfd p = {{ {}, {}, 0 }}; r = poll(&p, 1, {timeout_ms}); if (r > 0) r = p.revents; }}\n",
            var(dmabuf),
            events.raw()
        ),
        Op::FenceInfo { sync } => {
            let mut out = format!(
                "\t{{ char d[32], t[32]; r = fence_status({0}, d, t); printf(\"     status %ld: %s/%s\\n\", r, d, t);\n",
                var(sync)
            );
            if let Some(b) = prov.get(sync).filter(|b| track && b.queue == Queue::Cap) {
                let _ = write!(out, "\t  if (r == 1) complete_buf[{}][1][{} & 31] = said_by(d);", ctx_index(&b.ctx), b.index);
            }
            out + " }\n"
        }
        Op::Merge { a, b, ret } => format!(
            "\t{{ struct sync_merge_data m = {{ .name = \"m2mfuzz\", .fd2 = {}, .fence = -1 }};\n\t  r = xioctl({}, SYNC_IOC_MERGE, &m); {} = m.fence; }}\n",
            var(b),
            var(a),
            var(ret)
        ),
        Op::RequestAlloc { ctx, ret } => format!(
            "\tif ({0}.media < 0) {{ char p[96]; snprintf(p, sizeof(p), \"/sys/class/video4linux/%s/device\", {0}.path + 5);\n\t  for (int n = 0; n < 16 && {0}.media < 0; n++) {{ char q[128], m[32]; snprintf(q, sizeof(q), \"%s/media%d\", p, n);\n\t    if (!access(q, F_OK)) {{ snprintf(m, sizeof(m), \"/dev/media%d\", n); {0}.media = open(m, O_RDWR | O_CLOEXEC); }} }} }}\n\tr = xioctl({0}.media, MEDIA_IOC_REQUEST_ALLOC, &{1}); if (!r) r = {1};\n",
            var(ctx),
            var(ret)
        ),
        Op::RequestQueue { req } => format!("\tr = xioctl({}, MEDIA_REQUEST_IOC_QUEUE, NULL);\n", var(req)),
        Op::RequestReinit { req } => format!("\tr = xioctl({}, MEDIA_REQUEST_IOC_REINIT, NULL);\n", var(req)),
        Op::SetCtrl { ctx, id, value, request } => format!(
            "\t{{ struct v4l2_ext_control c = {{ .id = {:#x}, .value64 = {value}LL }};\n\t  struct v4l2_ext_controls cs = {{ .which = {}, .count = 1, .request_fd = {}, .controls = &c }};\n\t  r = xioctl({}.fd, VIDIOC_S_EXT_CTRLS, &cs); }}\n",
            id.0,
            if request.is_some() { "V4L2_CTRL_WHICH_REQUEST_VAL" } else { "V4L2_CTRL_WHICH_CUR_VAL" },
            request.map_or("0".into(), |r| var(&r)),
            var(ctx)
        ),
        Op::SwTimeline { ret } => format!("\tr = {} = open(\"/sys/kernel/debug/sync/sw_sync\", O_RDWR | O_CLOEXEC);\n", var(ret)),
        Op::SwFence { timeline, value, ret } => format!(
            "\t{{ struct sw_sync_create_fence_data d = {{ .value = {value}, .name = \"m2mfuzz\", .fence = -1 }};\n\t  r = xioctl({}, SW_SYNC_IOC_CREATE_FENCE, &d); {} = d.fence; }}\n",
            var(timeline),
            var(ret)
        ),
        Op::SwInc { timeline, by } => format!("\t{{ __u32 by = {by}; r = xioctl({}, SW_SYNC_IOC_INC, &by); }}\n", var(timeline)),
        Op::Sleep { ms } => format!("\tr = usleep({ms} * 1000);\n"),
        // Threads meet between segments (see `to_c`).
        Op::Barrier {} => "\tr = 0;\n".to_string(),
    }
}
