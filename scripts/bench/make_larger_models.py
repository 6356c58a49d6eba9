# Makes the two larger models of the private-proof benchmark (issue 14, must-show 3), seeded:
#   mlp_wide.onnx   1x784 -> Gemm 256 -> Relu -> Gemm 128 -> Relu -> Gemm 10  (2.3x mlp_mnist's multiply-adds)
#   cnn_large.onnx  1x1x28x28 -> Conv(8,5x5) Relu AvgPool2 -> Conv(16,5x5) Relu AvgPool2 -> Flatten
#                   -> Gemm 64 -> Relu -> Gemm 10                                (about 4x lenet_small's)
#   mlp_ops.onnx    1x64 -> Gemm 64 -> Sigmoid -> Mul 1.5 -> Gemm 32 -> Tanh -> Gemm 10 -> Softmax
#                   (the private proofs' tables: two 4,096-entry ones and Softmax's 65,535-entry exp table)
# Usage: python3 scripts/bench/make_larger_models.py OUT_DIR
import sys, os
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(14)
inits = []


def init(name, shape, fan):
    t = numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(fan)).astype(np.float32))
    t.name = name
    inits.append(t)
    return name


def save(nodes, name, x_shape):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info('x', TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 10])], list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(out, name + '.onnx'))
    inits.clear()


dims = [784, 256, 128, 10]
nodes, prev = [], 'x'
for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
    last = i == len(dims) - 2
    z = 'y' if last else f'z{i}'
    nodes.append(helper.make_node('Gemm', [prev, init(f'w{i}', [b, a], a), init(f'b{i}', [b], a)], [z], transB=1))
    if not last:
        nodes.append(helper.make_node('Relu', [z], [f'a{i}']))
        prev = f'a{i}'
save(nodes, 'mlp_wide', [1, 784])

nodes = [
    helper.make_node('Conv', ['x', init('c1w', [8, 1, 5, 5], 25), init('c1b', [8], 25)], ['c1'], kernel_shape=[5, 5], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1]),
    helper.make_node('Relu', ['c1'], ['r1']),
    helper.make_node('AveragePool', ['r1'], ['p1'], kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node('Conv', ['p1', init('c2w', [16, 8, 5, 5], 200), init('c2b', [16], 200)], ['c2'], kernel_shape=[5, 5], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1]),
    helper.make_node('Relu', ['c2'], ['r2']),
    helper.make_node('AveragePool', ['r2'], ['p2'], kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node('Flatten', ['p2'], ['f']),
    helper.make_node('Gemm', ['f', init('fw', [64, 256], 256), init('fb', [64], 256)], ['h'], transB=1),
    helper.make_node('Relu', ['h'], ['hr']),
    helper.make_node('Gemm', ['hr', init('ow', [10, 64], 64), init('ob', [10], 64)], ['y'], transB=1),
]
save(nodes, 'cnn_large', [1, 1, 28, 28])

mul = numpy_helper.from_array(np.full([1, 64], 1.5, np.float32))
mul.name = 'k'
inits.append(mul)
nodes = [
    helper.make_node('Gemm', ['x', init('g1w', [64, 64], 64), init('g1b', [64], 64)], ['h1'], transB=1),
    helper.make_node('Sigmoid', ['h1'], ['s1']),
    helper.make_node('Mul', ['s1', 'k'], ['m1']),
    helper.make_node('Gemm', ['m1', init('g2w', [32, 64], 64), init('g2b', [32], 64)], ['h2'], transB=1),
    helper.make_node('Tanh', ['h2'], ['t2']),
    helper.make_node('Gemm', ['t2', init('g3w', [10, 32], 32), init('g3b', [10], 32)], ['h3'], transB=1),
    helper.make_node('Softmax', ['h3'], ['y'], axis=1),
]
save(nodes, 'mlp_ops', [1, 64])
