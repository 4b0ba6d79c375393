import { injectable } from 'tsyringe';
import { KeyhubError } from '@keyhub/shared';
import type { api } from '@keyhub/protocol';
import { HubContext } from '../../context';
import { listOperators, operatorByName } from '../../store/queries/operators';
import { operatorView } from './operator-view';

@injectable()
export class ListOperators {
  constructor(private readonly ctx: HubContext) {}

  async execute(): Promise<api.OperatorView[]> {
    return (await listOperators(this.ctx.ds.manager)).map(operatorView);
  }

  async show(name: string): Promise<api.OperatorView> {
    const o = await operatorByName(this.ctx.ds.manager, name);
    if (!o) throw new KeyhubError('OPERATOR_NOT_FOUND', `no operator ${name}`);
    return operatorView(o);
  }
}
