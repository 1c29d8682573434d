// A tiny network of every layer kind torchvision's segmentation networks add, mirroring
// scripts/make_layer_fixtures.py's mini_forward: a dilated body, an auxiliary 1x1 head resized to
// the input, ASPP-like branches (1x1, 3x3 dilated 3, image pooling broadcast back by resize),
// concat, projection with dropout, a 1x1 classifier resized to the input; torchvision's loss.
import { bn, conv, type FcnArchitecture } from '../../src/model/fcn.js';
import type { Layer } from '../../src/model/layers.js';

export function miniNet(classes: number, p: number): FcnArchitecture {
  const layers: Layer[] = [];
  const cbr = (convName: string, bnName: string, input: string, output: string, inC: number, outC: number, k: number, stride: number, pad: number, dilation = 1) => {
    layers.push(conv(convName, input, `${output}/conv`, inC, outC, k, stride, pad, false, 'kaiming_fan_out', dilation));
    layers.push(bn(bnName, `${output}/conv`, `${output}/bn`, outC));
    layers.push({ op: 'relu', input: `${output}/bn`, output });
  };
  cbr('conv1', 'bn1', 'image', 'h', 3, 4, 3, 2, 1);
  cbr('conv2', 'bn2', 'h', 'body', 4, 6, 3, 1, 2, 2);
  const backboneEnd = layers.length - 1;
  layers.push(conv('aux', 'body', 'aux/score', 6, classes, 1, 1, 0, true, 'pytorch_default'));
  layers.push({ op: 'resize', input: 'aux/score', like: 'image', output: 'aux' });
  cbr('b0', 'b0bn', 'body', 'b0', 6, 4, 1, 1, 0);
  cbr('b1', 'b1bn', 'body', 'b1', 6, 4, 3, 1, 3, 3);
  layers.push({ op: 'globalavgpool', input: 'body', output: 'pooled' });
  cbr('pool', 'poolbn', 'pooled', 'pool', 6, 4, 1, 1, 0);
  layers.push({ op: 'resize', input: 'pool', like: 'body', output: 'b2' });
  layers.push({ op: 'concat', inputs: ['b0', 'b1', 'b2'], output: 'cat' });
  cbr('project', 'projectbn', 'cat', 'proj', 12, 4, 1, 1, 0);
  layers.push({ op: 'dropout', input: 'proj', output: 'dropped', p });
  layers.push(conv('head', 'dropped', 'score', 4, classes, 1, 1, 0, true, 'pytorch_default'));
  layers.push({ op: 'resize', input: 'score', like: 'image', output: 'out' });
  return { name: 'mininet', numClasses: classes, layers, input: 'image', output: 'out', auxOutput: 'aux', backboneEnd, stride: 1, loss: 'torchvision' };
}
