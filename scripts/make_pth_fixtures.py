#!/usr/bin/python3
"""PyTorch-made fixtures for the weights readers (src/weights/): small torch.save files and the values
torch holds for them, so test/weights.test.ts can compare every value exactly without Python.

Run with Debian's PyTorch (never needed to build or test the package):
    /usr/bin/python3 scripts/make_pth_fixtures.py            # writes test/fixtures/pth/
    /usr/bin/python3 scripts/make_pth_fixtures.py --full DIR # full-size manual check (not committed)

Fixtures (test/fixtures/pth/):
  tensors.pth, tensors_legacy.pth   float32/float16/bfloat16/float64/int64/int32/uint8/bool tensors, 0-d
                                    scalars, an empty tensor, two views of one storage, a transposed and
                                    a step-sliced view; zip format and the legacy (pre-1.6) format
  tensors_deflate.pth               tensors.pth re-zipped with deflate
  tensors_zip64.pth                 tensors.pth re-zipped with zip64 records and extra fields everywhere
  state_dict.pth                    an OrderedDict state_dict of Conv2d+BatchNorm2d (with `_metadata` and
                                    a legacy int64 `num_batches_tracked`)
  wrapped.pth                       {'epoch', 'state_dict', 'optimizer', ...}: ints, floats, None, bools,
                                    tuples, lists, a big int, as training scripts save
  book_wrong_shape.pth              the book's FCN key layout, '0.weight' with the wrong shape (shapes only in JSON)
  book_missing.pth                  the book's FCN key layout with most keys missing
  oversized_view.pth                an expanded (stride 0) view of 2^40 elements over a one-element storage
  malicious_*.pth                   pickles whose loading would run code (os.system, posix.system,
                                    builtins.eval, subprocess.Popen through STACK_GLOBAL, a legacy file,
                                    a payload nested inside a real state_dict); none may ever load
  expected.json                     per file: name -> {dtype, shape, values (row-major)}; non-finite
                                    floats as "inf"/"-inf"/"nan"

--full DIR writes (45 MB each, never committed) the book's FCN state_dict and torchvision's resnet18
state_dict in both formats, converts them with our TypeScript loader (node must have built dist/) and
compares every value with what torch saved.
"""
import collections
import io
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import time
import zipfile
import zlib

import torch
import torch.nn as nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'pth')
PWNED = '/tmp/fcn-pwned'
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # zip timestamps, so re-running gives the same bytes

DTYPES = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.float64: 'F64',
          torch.int64: 'I64', torch.int32: 'I32', torch.uint8: 'U8', torch.bool: 'BOOL'}


def jsonable(v):
    if isinstance(v, float):
        if math.isnan(v):
            return 'nan'
        if math.isinf(v):
            return 'inf' if v > 0 else '-inf'
    if isinstance(v, bool):
        return int(v)
    return v


def describe(t):
    flat = t.detach().reshape(-1)
    if t.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()  # exact: every half/bfloat16 is a float32
    return {'dtype': DTYPES[t.dtype], 'shape': list(t.shape), 'values': [jsonable(x) for x in flat.tolist()]}


def describe_state(sd):
    return {k: describe(v) for k, v in sd.items()}


def tensors_fixture():
    g = torch.Generator().manual_seed(1234)
    base = torch.arange(24, dtype=torch.float32) * 0.5 - 3.25
    matrix = torch.randn(3, 5, generator=g)
    sd = collections.OrderedDict()
    sd['f32'] = torch.randn(2, 3, 4, generator=g)
    sd['f16'] = torch.tensor([0.0, -0.0, 1.5, -2.0, 65504.0, 6e-8, 1e-5, float('inf'), float('-inf'), float('nan'), 0.1], dtype=torch.float16)
    sd['bf16'] = torch.tensor([1.0, -3.140625, 1e30, 1e-30, 0.1], dtype=torch.bfloat16)
    sd['f64'] = torch.tensor([math.pi, -1e300, 5e-324], dtype=torch.float64)
    sd['i64'] = torch.tensor([0, -3, 2 ** 40, -(2 ** 50), 7], dtype=torch.int64)
    sd['i32'] = torch.tensor([[1, -2], [2 ** 31 - 1, -(2 ** 31)]], dtype=torch.int32)
    sd['u8'] = torch.tensor([0, 1, 254, 255], dtype=torch.uint8)
    sd['bool'] = torch.tensor([True, False, True])
    sd['scalar'] = torch.tensor(2.5)
    sd['num_batches_tracked'] = torch.tensor(7)  # 0-d int64, as BatchNorm keeps it
    sd['empty'] = torch.zeros(0, 3)
    # two views of one storage: a reshaped slice and a row of a reshape
    sd['shared_a'] = base[2:8].view(2, 3)
    sd['shared_b'] = base.view(4, 6)[2]
    # non-contiguous views
    sd['transposed'] = matrix.t()
    sd['stepped'] = matrix[:, ::2]
    sd['stepped_offset'] = base.view(4, 6)[1:, 1::3]
    sd['expanded'] = torch.tensor([1.0, 2.0, 3.0]).view(3, 1).expand(3, 4)  # stride 0
    assert sd['shared_a'].storage().data_ptr() == sd['shared_b'].storage().data_ptr()
    assert not sd['transposed'].is_contiguous() and not sd['stepped'].is_contiguous()
    return sd


def state_dict_fixture():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    net.train()
    for _ in range(2):
        net(torch.randn(4, 2, 3, 3))
    return net.state_dict()


def wrapped_fixture(sd):
    net = nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9, weight_decay=1e-3)
    net(torch.ones(1, 2)).sum().backward()
    opt.step()
    return {'epoch': 3, 'state_dict': sd, 'optimizer': opt.state_dict(), 'note': 'fcn', 'best': 0.8515,
            'big': 2 ** 70, 'neg': -5, 'none': None, 'flag': True, 'pair': (1, 'two'), 'list': [1.5, [2]]}


# ----------------------------------------------------------------------------------------------
# malicious pickles


class SystemCall:
    def __reduce__(self):
        return (os.system, ('touch ' + PWNED,))


def global_op(module, name):
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def unicode_op(s):
    b = s.encode()
    return b'X' + struct.pack('<I', len(b)) + b


def torch_like_zip(path, pickle_bytes, stem='archive'):
    """The layout torch.save writes, with a hand-made data.pkl."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
        z.writestr(zipfile.ZipInfo(stem + '/data.pkl', FIXED_TIME), pickle_bytes)
        z.writestr(zipfile.ZipInfo(stem + '/version', FIXED_TIME), '3\n')


def malicious_fixtures():
    # os.system spelled as the module users think of (pickle writes posix.system on Linux)
    p = b'\x80\x02' + global_op('os', 'system') + unicode_op('touch ' + PWNED) + b'\x85R.'
    torch_like_zip(os.path.join(OUT, 'malicious_os_system.pth'), p)
    # builtins.eval of an expression that would run a shell
    p = b'\x80\x02' + global_op('builtins', 'eval') + unicode_op("__import__('os').system('touch %s')" % PWNED) + b'\x85R.'
    torch_like_zip(os.path.join(OUT, 'malicious_eval.pth'), p)
    # subprocess.Popen named through STACK_GLOBAL (protocol 4), inside a dict like a state_dict
    p = (b'\x80\x04}\x8c\x06weight' + b'\x8c\nsubprocess\x8c\x05Popen\x93' + b'\x8c\x05touch\x8c' + bytes([len(PWNED)]) + PWNED.encode()
         + b'\x86\x85R' + b's.')
    torch_like_zip(os.path.join(OUT, 'malicious_subprocess.pth'), p)
    # what torch.save itself writes for a payload (posix.system), alone and nested in a real state_dict
    torch.save(SystemCall(), os.path.join(OUT, 'malicious_posix_system.pth'))
    sd = collections.OrderedDict([('conv.weight', torch.ones(2)), ('conv.bias', SystemCall())])
    torch.save(sd, os.path.join(OUT, 'malicious_nested.pth'))
    torch.save(sd, os.path.join(OUT, 'malicious_legacy.pth'), _use_new_zipfile_serialization=False)
    # make sure each one really runs code under torch.load (then clean up): the fixtures must be real threats
    for name in ['malicious_os_system.pth', 'malicious_eval.pth', 'malicious_subprocess.pth', 'malicious_posix_system.pth',
                 'malicious_nested.pth', 'malicious_legacy.pth']:
        if os.path.exists(PWNED):
            os.remove(PWNED)
        obj = torch.load(os.path.join(OUT, name))
        if name == 'malicious_subprocess.pth':
            obj['weight'].wait()
        assert os.path.exists(PWNED), name + ' did not run its payload under torch.load'
        os.remove(PWNED)


# ----------------------------------------------------------------------------------------------
# re-zipping: deflate and zip64


def rezip_deflate(src, dst):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w', zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(zipfile.ZipInfo(info.filename, FIXED_TIME), zin.read(info.filename), zipfile.ZIP_DEFLATED)


def rezip_zip64(src, dst):
    """Every size and offset saturated at 0xffffffff with the real values in zip64 extra fields,
    and zip64 end-of-central-directory records, as writers do for files past 4 GiB."""
    with zipfile.ZipFile(src) as zin:
        entries = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    out = io.BytesIO()
    central = []
    for name, data in entries:
        offset = out.tell()
        crc = zlib.crc32(data) & 0xffffffff
        nb = name.encode()
        extra = struct.pack('<HHQQ', 1, 16, len(data), len(data))
        out.write(struct.pack('<IHHHHHIIIHH', 0x04034b50, 45, 0, 0, 0, 0, crc, 0xffffffff, 0xffffffff, len(nb), len(extra)))
        out.write(nb + extra + data)
        central.append((nb, crc, len(data), offset))
    cd_start = out.tell()
    for nb, crc, size, offset in central:
        extra = struct.pack('<HHQQQ', 1, 24, size, size, offset)
        out.write(struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 45, 45, 0, 0, 0, 0, crc, 0xffffffff, 0xffffffff,
                              len(nb), len(extra), 0, 0, 0, 0, 0xffffffff))
        out.write(nb + extra)
    cd_end = out.tell()
    n = len(central)
    out.write(struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 45, 45, 0, 0, n, n, cd_end - cd_start, cd_start))
    out.write(struct.pack('<IIQI', 0x07064b50, 0, cd_end, 1))
    out.write(struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffffff, 0xffffffff, 0))
    with open(dst, 'wb') as f:
        f.write(out.getvalue())
    with zipfile.ZipFile(dst) as z:  # Python's reader agrees it is a valid zip64 archive
        assert z.testzip() is None and [i.filename for i in z.infolist()] == [e[0] for e in entries]


# ----------------------------------------------------------------------------------------------
# the book's layout, small: for shape and missing-key errors


def book_fixtures():
    torch.manual_seed(9)
    wrong = collections.OrderedDict()
    wrong['0.weight'] = torch.randn(64, 3, 3, 3)  # the book's conv1 is 7x7
    wrong['1.weight'] = torch.ones(64)
    wrong['final_conv.weight'] = torch.randn(21, 512, 1, 1)
    wrong['final_conv.bias'] = torch.zeros(21)
    torch.save(wrong, os.path.join(OUT, 'book_wrong_shape.pth'))
    missing = collections.OrderedDict()
    for k in ['weight', 'bias', 'running_mean', 'running_var']:
        missing['1.' + k] = torch.ones(64)
    missing['1.num_batches_tracked'] = torch.tensor(0)
    missing['final_conv.weight'] = torch.randn(5, 512, 1, 1)
    missing['final_conv.bias'] = torch.zeros(5)
    torch.save(missing, os.path.join(OUT, 'book_missing.pth'))
    # a stride-0 view claiming 2^40 elements over a one-element storage: 4 TiB if materialised
    torch.save(collections.OrderedDict([('w', torch.ones(1).expand(2 ** 20, 2 ** 20))]), os.path.join(OUT, 'oversized_view.pth'))
    shapes = lambda sd: {k: {'dtype': DTYPES[v.dtype], 'shape': list(v.shape)} for k, v in sd.items()}
    return {'book_wrong_shape.pth': shapes(wrong), 'book_missing.pth': shapes(missing)}


def main():
    os.makedirs(OUT, exist_ok=True)
    if os.path.exists(PWNED):
        os.remove(PWNED)
    expected = {}
    sd = tensors_fixture()
    torch.save(sd, os.path.join(OUT, 'tensors.pth'))
    torch.save(sd, os.path.join(OUT, 'tensors_legacy.pth'), _use_new_zipfile_serialization=False)
    rezip_deflate(os.path.join(OUT, 'tensors.pth'), os.path.join(OUT, 'tensors_deflate.pth'))
    rezip_zip64(os.path.join(OUT, 'tensors.pth'), os.path.join(OUT, 'tensors_zip64.pth'))
    for name in ['tensors.pth', 'tensors_legacy.pth', 'tensors_deflate.pth', 'tensors_zip64.pth']:
        loaded = torch.load(os.path.join(OUT, name))
        assert list(loaded.keys()) == list(sd.keys())
        expected[name] = describe_state(sd)
    state = state_dict_fixture()
    torch.save(state, os.path.join(OUT, 'state_dict.pth'))
    expected['state_dict.pth'] = describe_state(state)
    wrapped = wrapped_fixture(state)
    torch.save(wrapped, os.path.join(OUT, 'wrapped.pth'))
    opt = wrapped['optimizer']
    expected['wrapped.pth'] = {
        'state_dict': describe_state(state),
        'scalars': {k: wrapped[k] for k in ['epoch', 'note', 'best', 'neg', 'none', 'flag']},
        'big': str(wrapped['big']),
        'pair': list(wrapped['pair']),
        'list': wrapped['list'],
        'param_groups': opt['param_groups'],
        'momentum_buffer_0': describe(opt['state'][0]['momentum_buffer']),
    }
    expected.update(book_fixtures())
    malicious_fixtures()
    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(expected, f, indent=1, sort_keys=False)
        f.write('\n')
    for name in sorted(os.listdir(OUT)):
        print('%8d  %s' % (os.path.getsize(os.path.join(OUT, name)), name))


# ----------------------------------------------------------------------------------------------
# full-size manual check


def bilinear_kernel(in_channels, out_channels, kernel_size):
    """The book's bilinear_kernel (d2l 14.11)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = (torch.arange(kernel_size).reshape(-1, 1), torch.arange(kernel_size).reshape(1, -1))
    filt = (1 - torch.abs(og[0] - center) / factor) * (1 - torch.abs(og[1] - center) / factor)
    weight = torch.zeros((in_channels, out_channels, kernel_size, kernel_size))
    weight[range(in_channels), range(out_channels), :, :] = filt
    return weight


def read_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop('__metadata__', {})
    out = {}
    for k, v in header.items():
        assert v['dtype'] == 'F32'
        b, e = v['data_offsets']
        out[k] = torch.frombuffer(bytearray(data[8 + n + b:8 + n + e]), dtype=torch.float32).reshape(v['shape'])
    return out, meta


def compare(what, ours, theirs):
    assert list(ours.keys()) == list(theirs.keys()), (what, set(ours) ^ set(theirs))
    for k, t in theirs.items():
        assert list(ours[k].shape) == list(t.shape), (what, k, ours[k].shape, t.shape)
        assert torch.equal(ours[k], t.float()), (what, k)
    print('  %s: %d tensors, %d values, all bit-identical' % (what, len(theirs), sum(t.numel() for t in theirs.values())))


def full_check(out_dir):
    import torchvision
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    pretrained_net = torchvision.models.resnet18()  # no internet here: random weights, same layout
    pretrained_net.train()
    pretrained_net(torch.randn(2, 3, 64, 64))  # non-trivial running statistics
    # the book's FCN, built exactly as d2l 14.11 does
    net = nn.Sequential(*list(pretrained_net.children())[:-2])
    num_classes = 21
    net.add_module('final_conv', nn.Conv2d(512, num_classes, kernel_size=1))
    net.add_module('transpose_conv', nn.ConvTranspose2d(num_classes, num_classes, kernel_size=64, padding=16, stride=32))
    net.transpose_conv.weight.data.copy_(bilinear_kernel(num_classes, num_classes, 64))
    book = net.state_dict()
    resnet = pretrained_net.state_dict()
    files = {}
    for name, obj in [('book_fcn', book), ('resnet18', resnet)]:
        files[name] = os.path.join(out_dir, name + '.pth')
        files[name + '_legacy'] = os.path.join(out_dir, name + '_legacy.pth')
        torch.save(obj, files[name])
        torch.save(obj, files[name + '_legacy'], _use_new_zipfile_serialization=False)
    for k, p in files.items():
        print('wrote %s (%.1f MB)' % (p, os.path.getsize(p) / 1e6))

    # canonical names from torchvision's own module order (independent of our TypeScript name map)
    children = [n for n, _ in pretrained_net.named_children()]

    def canonical(key):
        head, rest = key.split('.', 1)
        return children[int(head)] + '.' + rest if head.isdigit() else key

    want_book = collections.OrderedDict((canonical(k), v) for k, v in book.items() if not k.endswith('num_batches_tracked'))
    want_backbone = collections.OrderedDict((k, v) for k, v in resnet.items()
                                            if not k.endswith('num_batches_tracked') and not k.startswith('fc.'))
    node = os.environ.get('NODE', 'node')
    for name in ['book_fcn', 'book_fcn_legacy']:
        out = os.path.join(out_dir, name + '.safetensors')
        t0 = time.time()
        r = subprocess.run([node, os.path.join(ROOT, 'bin', 'fcn.js'), 'import', files[name], '--out', out],
                           cwd=ROOT, capture_output=True, text=True)
        print('fcn import %s (%.2f s): %s' % (name, time.time() - t0, r.stdout.strip().replace('\n', ' | ')))
        assert r.returncode == 0, r.stderr
        ours, meta = read_safetensors(out)
        assert meta['architecture'] == 'fcn32s-resnet18' and meta['numClasses'] == '21', meta
        compare(name, ours, want_book)
    script = ("import {loadBackbone, encodeSafetensors} from './dist/src/weights/index.js';"
              "import {fcnResNet18} from './dist/src/model/index.js';"
              "import {writeFileSync} from 'node:fs';"
              "const t0 = Date.now();"
              "const m = await loadBackbone(process.argv[1], fcnResNet18());"
              "const ms = Date.now() - t0;"
              "const e = new Map([...m].map(([k, v]) => [k, {shape: [v.length], data: v}]));"
              "writeFileSync(process.argv[2], encodeSafetensors(e));"
              "console.log(m.size + ' tensors in ' + ms + ' ms');")
    for name in ['resnet18', 'resnet18_legacy']:
        out = os.path.join(out_dir, name + '.backbone.safetensors')
        r = subprocess.run([node, '--input-type=module', '-e', script, files[name], out], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        print('loadBackbone %s: %s' % (name, r.stdout.strip()))
        ours, _ = read_safetensors(out)
        ours = collections.OrderedDict((k, v.reshape(want_backbone[k].shape)) for k, v in ours.items())
        compare(name, ours, want_backbone)
    print('full-size check passed')


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--full':
        full_check(sys.argv[2])
    elif len(sys.argv) == 1:
        main()
    else:
        sys.exit(__doc__)
